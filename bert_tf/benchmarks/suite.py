"""The benchmark suite: P1–P7 in one process, then the table, the JSON and the ratio chart.

    from bert_tf.benchmarks import run_suite
    result = run_suite("runs/bench", measures=("P1", "P2"), sizes="full", threads=2)

Outputs in `out_dir` (each written atomically): `bench.json` (environment, every repetition,
medians, ratios), `bench.txt` (the table) and `bench_ratios.png` (bert_tf / best peer per case).
A measure that fails is reported in the outputs (`errors`) and the suite raises after writing them.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import dataclass

from bert_tf.atomic import write_bytes_atomic
from bert_tf.benchmarks import environment
from bert_tf.benchmarks.chart import write_ratio_chart
from bert_tf.benchmarks.results import format_table, to_json
from bert_tf.benchmarks.sizes import SIZES
from bert_tf.benchmarks.timing import BenchmarkError

MEASURES = ("P1", "P2", "P3", "P4", "P5", "P6", "P7")


@dataclass
class SuiteResult:
    rows: list
    environment: dict
    table: str
    json_path: str
    table_path: str
    chart_path: str
    errors: dict


def run_suite(out_dir: str, measures=MEASURES, sizes="full", threads: int = 2,
              log=print, p3_models: tuple | None = None) -> SuiteResult:
    """p3_models: (teacher dir, distilled student dir) of a Rotten Tomatoes classifier: P3 then
    also compares the student as shipped (length signatures, int8) with the teacher's float32
    fixed-128 TFLite."""
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise BenchmarkError(f"unknown measure(s) {unknown}; choose from {MEASURES}")
    if sizes not in SIZES:
        raise BenchmarkError(f"unknown sizes {sizes!r}; choose from {sorted(SIZES)}")
    size = SIZES[sizes]
    thread_info = environment.fix_threads(threads)  # before any model is built
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    log(f"bench: sizes={sizes} measures={','.join(measures)} threads={thread_info} "
        f"load={os.getloadavg()[0]:.2f}")

    import keras
    keras.mixed_precision.set_global_policy("float32")

    rows, errors, durations = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bert_tf-bench-") as work_dir:
        sentiment_model = None
        for measure in measures:
            started = time.perf_counter()
            try:
                if measure in ("P1", "P3") and sentiment_model is None:
                    from bert_tf.benchmarks.sentiment import build_sentiment_model
                    sentiment_model = build_sentiment_model(size.real_weights, size.probe_sentences,
                                                            work_dir, size.tiny_config)
                    log(f"sentiment model: {'MiniLM-L6 real weights' if size.real_weights else 'tiny random'}"
                        f", probe training accuracy {sentiment_model.probe_accuracy:.4f}")
                rows.extend(_run_measure(measure, size, sentiment_model, threads, work_dir, log))
                if measure == "P3" and p3_models:
                    from bert_tf.benchmarks import p3_tflite
                    rows.extend(p3_tflite.run_models(p3_models, size, threads, log))
            except Exception as error:  # one measure failing must not lose the others' numbers
                errors[measure] = f"{type(error).__name__}: {error}"
                log(f"{measure} FAILED: {errors[measure]}\n{traceback.format_exc()}")
            durations[measure] = time.perf_counter() - started
            log(f"{measure} took {durations[measure]:.1f} s")
            # Written after every measure, so a long run stopped midway keeps what it measured.
            env, table, paths = _write_outputs(out_dir, rows, thread_info, sizes, measures,
                                               durations, errors, threads)

    log(table)
    json_path, table_path, chart_path = paths
    result = SuiteResult(rows, env, table, json_path, table_path, chart_path, errors)
    if errors:
        raise BenchmarkError(f"{len(errors)} measure(s) failed ({'; '.join(f'{k}: {v}' for k, v in errors.items())}); "
                             f"the others' results are in {json_path}")
    return result


def _write_outputs(out_dir, rows, thread_info, sizes, measures, durations, errors, threads):
    import json
    env = environment.describe(thread_info)
    env.update({"sizes": sizes, "measures": list(measures), "durations_s": dict(durations),
                "errors": dict(errors)})
    table = format_table(rows)
    os.makedirs(out_dir, exist_ok=True)
    paths = (os.path.join(out_dir, "bench.json"), os.path.join(out_dir, "bench.txt"),
             os.path.join(out_dir, "bench_ratios.png"))
    write_bytes_atomic(paths[0], json.dumps(to_json(rows, env), indent=2).encode("utf-8"))
    write_bytes_atomic(paths[1], (table + "\n").encode("utf-8"))
    write_ratio_chart(paths[2], rows, f"bert_tf / best peer — {env['cpu']}, {threads} threads, "
                      f"sizes {sizes}, load {env['load_average_1_5_15'][0]:.1f}")
    return env, table, paths


def _run_measure(measure, size, sentiment_model, threads, work_dir, log) -> list:
    if measure == "P1":
        from bert_tf.benchmarks import p1_end_to_end
        return p1_end_to_end.run(sentiment_model, size, work_dir, log, threads)
    if measure == "P2":
        from bert_tf.benchmarks import p2_encoder
        return p2_encoder.run(size, work_dir, log, threads)
    if measure == "P3":
        from bert_tf.benchmarks import p3_tflite
        return p3_tflite.run(sentiment_model, size, threads, log)
    if measure == "P4":
        from bert_tf.benchmarks import p4_training
        return p4_training.run(size, log)
    if measure == "P6":
        from bert_tf.benchmarks import p6_embeddings
        return p6_embeddings.run(size, work_dir, log)
    if measure == "P7":
        from bert_tf.benchmarks import p7_finetune
        return p7_finetune.run(size, _p7_init(size, work_dir), work_dir, log)
    from bert_tf.benchmarks import p5_tokenizer
    from bert_tf.data.fetch import minilm_vocab
    return p5_tokenizer.run(minilm_vocab(), size, log)


def _p7_init(size, work_dir) -> str:
    """The checkpoint P7 fine-tunes on both sides (transformers layout + vocab.txt): MiniLM-L6's
    real weights, or a tiny random encoder with bert-base-uncased's vocabulary."""
    from bert_tf.data.fetch import minilm_dir, minilm_vocab
    if size.real_weights:
        return minilm_dir()
    import shutil

    import keras

    from bert_tf.models import BertEncoder
    folder = os.path.join(work_dir, "p7-init")
    keras.utils.set_random_seed(0)
    BertEncoder(size.tiny_config).save_pretrained(folder)
    shutil.copy(minilm_vocab(), os.path.join(folder, "vocab.txt"))
    return folder
