"""Benchmarks of bert_tf against its peers (HF transformers, KerasHub, Model Garden, LiteRT).

`run_suite` runs the measures P1–P6 in one process with alternating repetitions and writes a
table, a JSON file and a ratio chart; `bert-tf bench` and `tools/bench.py` call it.
"""

from bert_tf.benchmarks.suite import MEASURES, SuiteResult, run_suite
from bert_tf.benchmarks.timing import BenchmarkError

__all__ = ["run_suite", "SuiteResult", "MEASURES", "BenchmarkError"]
