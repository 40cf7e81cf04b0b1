"""`bert-tf evaluate`: score a fine-tuned model directory on a labeled file (or stdin); with
`--report DIR`, also the scores' breakdown as JSON and charts."""

from __future__ import annotations


def register(subparsers):
    p = subparsers.add_parser("evaluate", help="score a `bert-tf finetune` output on labeled data")
    p.add_argument("--model", required=True, help="the --out directory of `bert-tf finetune`")
    p.add_argument("--data", default="-", help="labeled file in the task's training format; '-' "
                   "(default) reads stdin: JSON Lines for classify, CoNLL for ner, SQuAD JSON "
                   "for squad")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write DIR/report.json (the scores with their breakdown: confusion "
                        "matrix and per-class scores, per entity type, by answer length, "
                        "recall@k) and its charts as PNGs")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import os

    from bert_tf import fileio
    from bert_tf.commands.predict import stdin_to_file
    from bert_tf.tasks import evaluate

    with stdin_to_file(args.data, args.model) as path:
        scores = evaluate(args.model, path, batch_size=args.batch_size, report_dir=args.report,
                          title=None if args.data != "-" else
                          f"{os.path.basename(fileio.abspath(args.model))} on stdin")
    print(json.dumps(scores, indent=1, default=float))
    return 0
