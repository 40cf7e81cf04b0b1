#!/usr/bin/env python
"""Benchmark suite (P1-P7): bert_tf vs HF transformers, ONNX Runtime, KerasHub, Model Garden,
LiteRT, sentence-transformers, PyTorch fine-tuning.

    python tools/bench.py                      # everything, full sizes, 2 threads -> runs/bench/
    python tools/bench.py --measures P2 --sizes tiny

The same as `bert-tf bench`; see bert_tf/benchmarks for what each measure times.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bert_tf.commands import bench  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command")
    bench.register(subparsers)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.run(args)
    except (ValueError, RuntimeError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
