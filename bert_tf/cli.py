"""`bert-tf` command line: each stage of the BERT lifecycle is a subcommand.

This module only parses arguments; each subcommand lives in `bert_tf/commands/<name>.py`, which
defines `register(subparsers)` (adding its parser with `set_defaults(run=...)`) and calls the library.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand modules under bert_tf.commands, in the order `--help` lists them.
COMMAND_MODULES = ("demo", "vocab", "dataset", "create_pretraining_data", "pretrain", "finetune",
                   "distill", "evaluate", "predict", "explain", "embed", "search", "export",
                   "import_model", "convert", "bench")


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


def quiet_tensorflow(verbose: bool) -> None:
    """Hides TensorFlow's C++ start-up logs (the CUDA probe's "failed call to cuInit" on every CPU
    machine, CPU-feature and oneDNN notices) unless `verbose`. TensorFlow reads
    TF_CPP_MIN_LOG_LEVEL once, when it is imported, so this must run before any command imports it:
    commands import TensorFlow inside `run`, and the CLI calls this before `run`. A level the user
    set in the environment is kept when not verbose."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 3: errors too (cuInit's is an error)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert-tf", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ start-up logs (hidden by default)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"bert_tf.commands.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    try:
        result = args.run(args)
    except KeyboardInterrupt:
        print("bert-tf: interrupted", file=sys.stderr)
        return 130
    except (CommandError, FileNotFoundError, ValueError, RuntimeError) as e:
        # Library errors (ConfigError, WeightsError, FetchError, ...) derive from these and carry a
        # message meant for the user; anything else is a bug and keeps its traceback.
        print(f"bert-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # The system's refusals (permission, is-a-directory, disk full, ...): not bugs either.
        where = f": {e.filename}" if e.filename else ""
        print(f"bert-tf {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
