"""`bert-tf distill`: a smaller student fine-tuned on a fine-tuned teacher's answers."""

from __future__ import annotations

import argparse


def _student_layers(value: str):
    """`--student-layers`: a count K, or two or more teacher layer indices ("0,2,5"), checked
    against the teacher once it is loaded."""
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a layer count K or the teacher's layers by index (e.g. 0,2,5), got {value!r}"
        ) from None
    return numbers[0] if len(numbers) == 1 else tuple(numbers)


def register(subparsers):
    from bert_tf.commands.finetune import training_arguments
    p = subparsers.add_parser(
        "distill", help="distil a fine-tuned model (classify, regress, ner, squad) into a smaller "
        "student that writes an ordinary fine-tuned output directory")
    p.add_argument("--teacher", required=True,
                   help="the teacher: a fine-tuned output directory (its task, labels, vocabulary "
                        "and casing are the student's)")
    student = p.add_mutually_exclusive_group(required=True)
    student.add_argument("--student-layers", type=_student_layers, default=None,
                         help="the student is K of the teacher's layers (every L/K-th, ending "
                              "with the top one), or the teacher's layers by 0-based index, "
                              "bottom to top (e.g. 0,2,5); its embeddings, pooler and head "
                              "copied")
    student.add_argument("--student-init", default=None,
                         help="or a smaller pre-trained encoder (any checkpoint format) with the "
                              "teacher's vocabulary")
    p.add_argument("--ensemble", action="append", default=[], metavar="DIR",
                   help="another fine-tuned teacher of the same task, labels and vocabulary "
                        "(repeat for more): the student learns the mean of every teacher's "
                        "distribution at --temperature (regress: the mean score); its layers "
                        "and any transfer still come from --teacher")
    p.add_argument("--train", required=True, help="labeled training file (the teacher's format)")
    p.add_argument("--unlabeled", default=None,
                   help="more texts (the --train format, labels not read) that the teacher "
                        "labels for the student (classify, regress; ner: CoNLL, one token per "
                        "line, blank lines between sentences)")
    p.add_argument("--augment", type=int, default=0,
                   help="ner: N new versions of every training sentence, each word swapped with "
                        "probability --augment-rate for a training word with the same tag "
                        "(label-wise token replacement), tags kept; the teacher's tags on them "
                        "are more targets for the student (default 0: off)")
    p.add_argument("--augment-rate", type=float, default=0.3,
                   help="with --augment: the probability that a word is replaced")
    p.add_argument("--eval", default=None, help="eval file: scored every epoch, best model kept")
    p.add_argument("--out", required=True, help="output directory (as `bert-tf finetune` writes)")
    p.add_argument("--temperature", type=float, default=2.0,
                   help="softmax temperature of the teacher's and the student's distributions")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="weight of the teacher's loss (the labels' loss gets 1 - alpha)")
    p.add_argument("--hidden-weight", type=float, default=0.0,
                   help="weight of the hidden-state transfer (TinyBERT; 0: off): mean squared "
                        "error between each student layer's states and its mapped teacher "
                        "layer's, embeddings included, through a learned projection for a "
                        "narrower --student-init (not saved with the student)")
    p.add_argument("--attention-weight", type=float, default=0.0,
                   help="weight of the attention transfer (0: off): KL divergence between the "
                        "teacher's and the student's attention distributions, head by head, on "
                        "every mapped layer (needs the teacher's head count). With either "
                        "transfer the teacher runs in every step (slower; batches not packed); "
                        "a --student-init student maps onto the teacher's layers uniformly")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per sequence (default: the teacher's)")
    training_arguments(p)
    # A student learns longer from soft targets than from labels: 4 epochs, not finetune's 2
    # (measured on Rotten Tomatoes, docs/results.md).
    p.set_defaults(run=run, epochs=4.0)


def run(args) -> int:
    import logging
    import os

    from bert_tf.commands.finetune import report
    from bert_tf.tasks import FinetuneOptions, finetune
    from bert_tf.tasks.model_dir import TASK_FILE, ModelDirError, check_task_record, read_json

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    max_length = args.max_length
    if max_length is None:
        path = os.path.join(args.teacher, TASK_FILE)
        try:
            max_length = check_task_record(read_json(path), path)["max_length"]
        except ModelDirError as e:
            raise ModelDirError(f"--teacher: {e}") from None
    result = finetune(FinetuneOptions(
        task=None, init=args.student_init, train=args.train, eval=args.eval, out=args.out,
        max_length=max_length, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup=args.warmup, weight_decay=args.weight_decay,
        seed=args.seed, dropout_seed=args.dropout_seed, strategy=args.strategy,
        mixed_precision=args.mixed_precision, freeze_encoder=args.freeze_encoder, xla=args.xla,
        eval_every=args.eval_every, progress=not args.no_progress, overwrite=args.overwrite,
        steps_per_execution=args.steps_per_execution, pack=not args.no_pack,
        teacher=args.teacher, student_layers=args.student_layers,
        temperature=args.temperature, alpha=args.alpha, unlabeled=args.unlabeled,
        augment=args.augment, augment_rate=args.augment_rate,
        hidden_weight=args.hidden_weight, attention_weight=args.attention_weight,
        ensemble=tuple(args.ensemble)))
    return report(result)
