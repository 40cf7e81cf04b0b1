#!/usr/bin/env python
"""Thin wrapper: `python tools/export_saved_model.py --model DIR --out saved_models/NAME [--version N]`
(the same as `bert-tf export saved-model ...`)."""

import argparse
import sys

from bert_tf.cli import CommandError
from bert_tf.commands import export


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="export_saved_model.py")
    export.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "saved-model", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.run(args) or 0)
    except (CommandError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"export_saved_model: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
