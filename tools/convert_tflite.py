#!/usr/bin/env python
"""The TFLite conversion tool: `python tools/convert_tflite.py --model DIR --out FILE.tflite
--quantize none|float16|dynamic|int8 [--without-tokenizer] [--sequence-length N]` converts, then runs
the `.tflite` (ai-edge-litert) against the Keras model on the task's test split and prints max abs
diff, label agreement, metric delta, file size and latency (same as `bert-tf export tflite`)."""

import sys

from bert_tf.cli import main as bert_tf_main


def main(argv=None) -> int:
    # The same parser and the same one-line errors (exit 2) as `bert-tf export tflite`.
    return bert_tf_main(["export", "tflite", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
