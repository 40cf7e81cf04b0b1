"""`bert-tf finetune {classify,regress,ner,squad,embed}`: fine-tune a pre-trained checkpoint on a task file."""

from __future__ import annotations

TASK_HELP = {
    "classify": "sentence (pair) classification on CSV/TSV/JSON Lines (text[,text_pair],label)",
    "regress": "sentence (pair) regression (one score, e.g. STS-B) on CSV/TSV/JSON Lines with "
               "numeric labels",
    "ner": "token classification on CoNLL files (token ... tag, blank line between sentences)",
    "squad": "extractive QA on SQuAD 1.1 / 2.0 JSON",
    "embed": "sentence embeddings on (anchor, positive[, negative]) pairs in CSV/TSV/JSON Lines "
             "(in-batch negatives; scored by retrieval recall@1)",
}


def _common(p):
    p.add_argument("--init", required=True, help="pre-trained checkpoint: HF dir, google dir, "
                   "KerasHub preset dir, Model Garden checkpoint or a bert_tf .keras")
    p.add_argument("--train", required=True, help="training file")
    p.add_argument("--eval", default=None, help="eval file: scored every epoch, best model kept")
    p.add_argument("--out", required=True, help="output directory (model.keras, labels.json, "
                   "vocab.txt, task.json, checkpoints/, tensorboard/)")
    p.add_argument("--vocab", default=None, help="vocab.txt (default: the one next to --init)")
    p.add_argument("--cased", action="store_true", help="cased vocabulary: no lowercasing")
    p.add_argument("--max-length", type=int, default=None, help="tokens per sequence "
                   "(default 128; 384 for squad)")
    training_arguments(p)


def training_arguments(p):
    """The trainer's options, shared with `bert-tf distill`."""
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32, help="global batch size")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.1, help="warmup fraction of the steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0,
                   help="head initialization, data order and (unless --dropout-seed) dropout")
    p.add_argument("--dropout-seed", type=int, default=None,
                   help="dropout masks alone: runs with one --seed and different --dropout-seed "
                        "start from the same head and see the same batches")
    p.add_argument("--strategy", default="auto",
                   help="auto, one_device, mirrored, multi_worker or tpu")
    p.add_argument("--mixed-precision", choices=("bf16", "fp16", "bfloat16", "float16"), default=None)
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train only the task head (feature extraction); default: full fine-tuning")
    p.add_argument("--xla", action="store_true", help="XLA-compile the training step's forward "
                   "and backward pass and the evaluations (one device)")
    p.add_argument("--no-pack", action="store_true",
                   help="run every training batch padded to --max-length; by default classify, "
                        "pairs, regress and ner train on each batch's real tokens only (exact, "
                        "faster on short texts; off under --xla)")
    p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations "
                   "(default: one epoch)")
    p.add_argument("--steps-per-execution", type=int, default=1,
                   help="run up to N training steps per call into the device (a loop inside "
                        "one tf.function: less host overhead, what TPUs need); same results")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --out (only if it holds nothing but a run's "
                        "files) and start afresh; without it, a rerun must have the same data "
                        "and settings (it resumes, or reports the run complete)")


def register(subparsers):
    p = subparsers.add_parser("finetune", help="fine-tune on classification, NER or SQuAD data")
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    for name, help_text in TASK_HELP.items():
        t = tasks.add_parser(name, help=help_text)
        _common(t)
        if name in ("classify", "regress"):
            t.add_argument("--text-column", default="text")
            t.add_argument("--text-pair-column", default=None)
            t.add_argument("--label-column", default="label")
        elif name == "ner":
            t.add_argument("--scheme", choices=("iob2", "iob1"), default="iob2",
                           help="tag scheme of the files (iob1 is converted to iob2)")
            t.add_argument("--stride", type=int, default=None,
                           help="texts longer than one window are cut into windows this many "
                                "word-pieces apart (default: half a window); each word takes "
                                "its label from the window where it has the most context")
        elif name == "embed":
            t.add_argument("--anchor-column", default="anchor")
            t.add_argument("--positive-column", default="positive")
            t.add_argument("--negative-column", default="negative",
                           help="hard negatives, used when the file has this column")
            t.add_argument("--pooling", choices=("mean", "cls", "max", "mean_sqrt_len"),
                           default=None, help="default: the pooling of a sentence-transformers "
                           "--init, else mean")
            t.add_argument("--scale", type=float, default=20.0,
                           help="cosine similarities are multiplied by this before the softmax "
                                "(sentence-transformers' default 20)")
        else:
            t.add_argument("--doc-stride", type=int, default=128)
            t.add_argument("--max-query-length", type=int, default=64)
            t.add_argument("--max-answer-length", type=int, default=30)
            t.add_argument("--null-score-diff-threshold", type=float, default=0.0)
        t.set_defaults(run=run)


def task_settings(args) -> dict:
    if args.task in ("classify", "regress"):
        return {"text_column": args.text_column, "text_pair_column": args.text_pair_column,
                "label_column": args.label_column}
    if args.task == "ner":
        return {"scheme": args.scheme, "stride": args.stride}
    if args.task == "embed":
        return {"anchor_column": args.anchor_column, "positive_column": args.positive_column,
                "negative_column": args.negative_column,
                "pooling": args.pooling or init_pooling(args.init), "scale": args.scale}
    return {"doc_stride": args.doc_stride, "max_query_length": args.max_query_length,
            "max_answer_length": args.max_answer_length,
            "null_score_diff_threshold": args.null_score_diff_threshold}


def init_pooling(init: str) -> str:
    """The pooling of a sentence-transformers --init (mean for any other checkpoint). A Dense
    projection in its pipeline is refused: fine-tuning would silently drop it."""
    from bert_tf.tasks.finetuning import FinetuneError
    from bert_tf.weights.sentence_transformers import is_sentence_transformers_dir, read_pipeline
    if not is_sentence_transformers_dir(init):
        return "mean"
    pipeline = read_pipeline(init)
    if pipeline.projection is not None:
        raise FinetuneError(f"--init {init}: its pipeline has a Dense projection, which "
                            f"`finetune embed` does not train yet; start from its encoder")
    return pipeline.pooling


def run(args) -> int:
    import logging

    from bert_tf.tasks import FinetuneOptions, finetune

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    max_length = args.max_length or (384 if args.task == "squad" else 128)
    result = finetune(FinetuneOptions(
        task=args.task, init=args.init, train=args.train, eval=args.eval, out=args.out,
        vocab=args.vocab, lowercase=not args.cased, max_length=max_length, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, warmup=args.warmup,
        weight_decay=args.weight_decay, seed=args.seed, dropout_seed=args.dropout_seed,
        strategy=args.strategy, mixed_precision=args.mixed_precision,
        freeze_encoder=args.freeze_encoder,
        xla=args.xla, eval_every=args.eval_every, progress=not args.no_progress,
        steps_per_execution=args.steps_per_execution, pack=not args.no_pack,
        task_settings=task_settings(args), overwrite=args.overwrite))
    return report(result)


def report(result) -> int:
    """A finished run's summary line on stdout (exit 0), or where a SIGTERM left it (exit 143)."""
    import json
    import os
    import sys
    if result.interrupted:
        # No task.json was written: the directory is a resumable run, not a finished model.
        print(f"stopped by SIGTERM at step {result.steps}; saved a checkpoint in "
              f"{os.path.join(result.out, 'checkpoints')}; rerun the same command to resume",
              file=sys.stderr)
        return 143
    print(json.dumps({"out": result.out, "steps": result.steps, "best_step": result.best_step,
                      "metrics": result.metrics, "train_seconds": round(result.train_seconds, 1)},
                     default=float))
    return 0
