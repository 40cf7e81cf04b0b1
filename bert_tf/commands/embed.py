"""`bert-tf embed`: unit vectors for texts, from an embedding model (default: the embedded
all-MiniLM-L6-v2).

--model: a `bert-tf finetune embed` output directory, a sentence-transformers directory, or any
encoder checkpoint with a vocab.txt (then mean pooling and unit length, as sentence-transformers
wraps a plain BERT).
--data: a `.txt` file (one text per line; every line, blank ones included, so row i is line
i + 1), a CSV/TSV/JSON Lines file with a `text` column, or '-' for stdin lines.
--output: `.npy` (float32 [n, d]), `.jsonl` ({"text", "embedding"} per line) or '-' (JSON Lines
on stdout). The vectors are those the exported SavedModel's `serving_default` returns.
"""

from __future__ import annotations


def add_model_argument(p):
    p.add_argument("--model", default=None, help="embedding model: a `bert-tf finetune embed` "
                   "output directory, a sentence-transformers directory or an encoder checkpoint "
                   "with vocab.txt (default: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_embedding_model(path):
    """The FinetunedModel of --model: an embed model directory, a sentence-transformers
    directory, a plain encoder checkpoint with vocab.txt (mean pooling, unit length), or by
    default the embedded MiniLM."""
    import os

    from bert_tf import fileio
    from bert_tf.cli import CommandError
    from bert_tf.tasks.model_dir import (TASK_FILE, checkpoint_embedding_model,
                                         load_model_source)
    if path is None:
        from bert_tf.data.fetch import minilm_dir
        path = minilm_dir()
    if fileio.isdir(path) and not fileio.exists(os.path.join(path, TASK_FILE)):
        return checkpoint_embedding_model(path)
    loaded = load_model_source(path)
    if loaded.task_type != "embed":
        raise CommandError(f"--model {path} is a {loaded.task_type!r} model; embeddings need an "
                           f"embedding model (`bert-tf finetune embed` or a sentence-transformers "
                           f"directory)")
    return loaded


def register(subparsers):
    p = subparsers.add_parser("embed", help="embed texts as unit vectors (.npy or JSON Lines)")
    add_model_argument(p)
    p.add_argument("--data", default="-", help="texts: .txt (one per line), CSV/TSV/JSON Lines "
                   "with a 'text' column, or '-' (stdin lines)")
    p.add_argument("--output", default="-", help=".npy, .jsonl, or '-' (JSON Lines on stdout)")
    p.set_defaults(run=run)


def run(args) -> int:
    import io
    import json
    import os
    import sys

    import numpy as np

    from bert_tf.atomic import write_bytes_atomic, write_text_atomic
    from bert_tf.cli import CommandError
    from bert_tf.commands.stdin_lines import decode_lines, stdin_bytes
    from bert_tf.search import embed_texts

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, got {args.batch_size}")
    suffix = os.path.splitext(args.output)[1].lower()
    if args.output != "-" and suffix not in (".npy", ".jsonl"):
        raise CommandError(f"--output {args.output}: use a .npy or .jsonl file (or '-')")
    loaded = load_embedding_model(args.model)
    task = loaded.task
    if args.data == "-":
        lines = decode_lines(stdin_bytes(), "stdin")
        if lines and lines[-1] == "":
            lines.pop()   # the newline that ends the last line
        records = task.records_from_texts(lines)
    else:
        records = task.read(args.data, labeled=False)
    if len(records) == 0:
        raise CommandError(f"{args.data if args.data != '-' else 'stdin'}: no texts to embed")
    vectors = embed_texts(task, loaded.model, records.anchors, args.batch_size,
                          progress=not args.no_progress and len(records) > args.batch_size)
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        write_bytes_atomic(args.output, buffer.getvalue())
        print(json.dumps({"output": args.output, "texts": int(vectors.shape[0]),
                          "dimensions": int(vectors.shape[1])}))
        return 0
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n"
                   for row in task.rows(records, {"embeddings": vectors}))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text)
    return 0
