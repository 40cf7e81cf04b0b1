#!/usr/bin/env python
"""Thin wrapper: `python tools/export_saved_model.py --model DIR --out saved_models/NAME [--version N]`
(the same as `bert-tf export saved-model ...`)."""

import sys

from bert_tf.cli import main as bert_tf_main


def main(argv=None) -> int:
    # The same parser and the same one-line errors (exit 2) as `bert-tf export saved-model`.
    return bert_tf_main(["export", "saved-model", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
