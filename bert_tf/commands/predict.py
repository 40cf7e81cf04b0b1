"""`bert-tf predict`: run a fine-tuned model directory on a file or on stdin, JSON Lines out.

Input: a file in the task's format (labels, if present, are ignored), or stdin lines:
classify — one text per line (`a<TAB>b` for pairs); ner — one sentence per line, tokens split on
whitespace; squad — JSON Lines {"question", "context"[, "id"]}. `--data FILE` with `--format
lines` reads a file the way stdin is read.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def stdin_to_file(data: str, model_dir: str):
    """`-` → stdin saved to a temp file with the extension the task's reader expects."""
    if data != "-":
        yield data
        return
    from bert_tf.tasks.model_dir import read_task_type
    from bert_tf.tasks.registry import task_class
    suffix = task_class(read_task_type(model_dir)).file_suffix
    text = sys.stdin.read()
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="bert-tf-stdin-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        yield path
    finally:
        os.remove(path)


def register(subparsers):
    p = subparsers.add_parser("predict", help="predict with a `bert-tf finetune` output")
    p.add_argument("--model", required=True, help="the --out directory of `bert-tf finetune`")
    p.add_argument("--data", default="-", help="input file; '-' (default) reads lines from stdin")
    p.add_argument("--format", choices=("file", "lines"), default="file",
                   help="read --data as a task file (default) or as stdin-style lines")
    p.add_argument("--output", default="-", help="JSON Lines output file ('-' = stdout)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from bert_tf.config import write_text_atomic
    from bert_tf.commands.stdin_lines import decode_lines, stdin_bytes
    from bert_tf.tasks import predict

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.data == "-":
        rows = predict(args.model, lines=decode_lines(stdin_bytes(), "stdin"),
                       batch_size=args.batch_size)
    elif args.format == "lines":
        from bert_tf import fileio
        with fileio.open(args.data, "rb") as f:
            rows = predict(args.model, lines=decode_lines(f.read(), args.data),
                           batch_size=args.batch_size)
    else:
        rows = predict(args.model, data=args.data, batch_size=args.batch_size)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text)
    return 0
