#!/usr/bin/env python
"""The TFLite conversion tool: `python tools/convert_tflite.py --model DIR --out FILE.tflite
--quantize none|float16|dynamic|int8 [--with-tokenizer] [--sequence-length N]` converts, then runs
the `.tflite` (ai-edge-litert) against the Keras model on the task's test split and prints max abs
diff, label agreement, metric delta, file size and latency (same as `bert-tf export tflite`)."""

import argparse
import sys

from bert_tf.cli import CommandError
from bert_tf.commands import export


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="convert_tflite.py")
    export.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "tflite", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.run(args) or 0)
    except (CommandError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"convert_tflite: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
