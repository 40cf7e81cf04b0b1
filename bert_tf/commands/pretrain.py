"""`bert-tf pretrain`: BERT pre-training (MLM + NSP) on tf.distribute, resumable.

Also runnable as `python -m bert_tf.commands.pretrain ARGS` (the same arguments).
"""

from __future__ import annotations

import argparse
import sys

from bert_tf.data.word_segmentation import WORD_SEGMENTERS

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="model config: HF config.json or google bert_config.json")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data",
                      help="TFRecord glob(s), comma-separated, written by create-pretraining-data "
                           "(static masking)")
    data.add_argument("--text",
                      help="raw text glob(s), comma-separated (one sentence per line, a blank line "
                           "between documents): dynamic masking, new pairs and masks every pass")
    p.add_argument("--vocab", default=None, help="vocab.txt (with --text)")
    p.add_argument("--cased", action="store_true", help="with --text: keep case")
    p.add_argument("--whole-word-mask", action="store_true",
                   help="with --text: mask all pieces of a word together")
    p.add_argument("--word-segmenter", choices=WORD_SEGMENTERS, default="none",
                   help="with --whole-word-mask: where the words of text written without spaces "
                        "come from; jieba (the zh extra) for Chinese: all characters of a "
                        "segmented word are masked together, tokens stay characters")
    p.add_argument("--masked-lm-prob", type=float, default=0.15, help="with --text")
    p.add_argument("--short-seq-prob", type=float, default=0.1, help="with --text")
    p.add_argument("--out", required=True,
                   help="output dir (checkpoints/, tensorboard/, pretrained/); rerun to resume")
    p.add_argument("--steps", type=_positive_int, required=True, help="optimizer steps in total")
    p.add_argument("--batch-size", type=_positive_int, default=32,
                   help="global batch per optimizer step (split over replicas and micro-batches)")
    p.add_argument("--max-seq-length", type=_positive_int, default=None,
                   help="default: from the data's metadata.json (--text: 128)")
    p.add_argument("--max-predictions-per-seq", type=_positive_int, default=None,
                   help="default: from the data's metadata.json (--text: 20)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="peak learning rate (default: by model width, 1e-4 * (768/hidden)^1.5 "
                        "capped at 1e-3: 1e-4 for BERT-base, 1e-3 for hidden <= 128)")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="linear warmup steps (default: a tenth of --steps)")
    p.add_argument("--adam-beta2", type=float, default=0.98,
                   help="Adam second-moment decay (default 0.98, RoBERTa's: steadier than "
                        "google's 0.999 at the larger rates small models need)")
    p.add_argument("--adam-epsilon", type=float, default=1e-6)
    p.add_argument("--end-learning-rate", type=float, default=0.0)
    p.add_argument("--decay-power", type=float, default=1.0,
                   help="1 = linear decay (google), other values = polynomial")
    p.add_argument("--optimizer", choices=("adamw", "lamb"), default="adamw")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip-norm", type=float, default=1.0, help="global-norm clip; 0 = off")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto",
                   help="auto picks by devices; multi_worker reads TF_CONFIG")
    p.add_argument("--mixed-precision", choices=("bf16", "fp16"), default=None,
                   help="fp16 uses dynamic loss scaling")
    p.add_argument("--xla", action="store_true",
                   help="XLA-compile the forward/backward pass (one device, GPUs or TPUs)")
    p.add_argument("--grad-accum-steps", type=_positive_int, default=1,
                   help="K micro-batches per step: K x b gives the gradient of one batch of K*b")
    p.add_argument("--steps-per-execution", type=_positive_int, default=1,
                   help="run up to N steps per call into the device (a loop inside one "
                        "tf.function: less host overhead, what TPUs need); same results; "
                        "executions also end at each --log-every/--checkpoint-every step")
    p.add_argument("--data-sharding", choices=("batch", "files"), default="batch",
                   help="batch (default): every worker reads all of --data and keeps its share "
                        "of each global batch (same examples per step on any number of workers); "
                        "files: each worker reads only its share of the files (give at least as "
                        "many files as workers), 1/N of the reading")
    p.add_argument("--checkpoint-every", type=_positive_int, default=1000)
    p.add_argument("--keep-checkpoints", type=_positive_int, default=3,
                   help="newest checkpoints kept (2 or more: a damaged newest one falls back)")
    p.add_argument("--log-every", type=_positive_int, default=100)
    p.add_argument("--seed", type=int, default=12345, help="data order and initialization")
    p.add_argument("--init-checkpoint", default=None,
                   help="start from these weights (a phase-one OUT dir or any checkpoint "
                        "BertPretrainer.from_pretrained reads), e.g. for phase two")
    p.add_argument("--attention-init", choices=("random", "neighbours"), default="random",
                   help="a fresh model's start: random (default) = google's initialization; "
                        "neighbours = the same with layer 0's heads looking one token back / "
                        "ahead, which gets small models past predicting a bag of the sequence's "
                        "tokens over a few thousand steps (slower in the first few hundred)")
    p.add_argument("--shuffle-buffer", type=_positive_int, default=10000)
    p.add_argument("--eval-data", default=None, help="held-out TFRecord glob")
    p.add_argument("--eval-every", type=_positive_int, default=None)
    p.add_argument("--eval-steps", type=_positive_int, default=None)
    p.add_argument("--eval-text", default=None,
                   help="with --text: held-out raw text (same format) for the MLM probe")
    p.add_argument("--probe-every", type=_positive_int, default=None,
                   help="steps between held-out MLM probes (default: a tenth of --steps)")
    p.add_argument("--probe-batches", type=int, default=8,
                   help="batches the MLM probe scores: held-out masked-LM accuracy against the "
                        "unigram baseline, collapse warning (0 = off; default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --out (only if it holds nothing but a run's "
                        "files) and start afresh; without it, a rerun must have the same data "
                        "and settings (it resumes, or reports the run complete)")
    p.add_argument("--export-only", action="store_true",
                   help="only write OUT/pretrained/ from the latest checkpoint, then exit")


def register(subparsers):
    p = subparsers.add_parser("pretrain", help="pre-train BERT (MLM + NSP), resumable")
    add_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import logging

    import os

    from bert_tf.training.pretraining import (PROBE_FILE, PretrainingConfig, export_pretrained,
                                              read_probe_history, run_pretraining)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.export_only:
        print(export_pretrained(args.out, args.mixed_precision))
        return 0
    config = PretrainingConfig(
        model_config=args.config, data=args.data, output_dir=args.out, total_steps=args.steps,
        batch_size=args.batch_size, max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq, learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps, end_learning_rate=args.end_learning_rate,
        decay_power=args.decay_power, optimizer=args.optimizer, weight_decay=args.weight_decay,
        clip_norm=args.clip_norm or None, adam_beta2=args.adam_beta2,
        adam_epsilon=args.adam_epsilon, strategy=args.strategy,
        mixed_precision=args.mixed_precision, xla=args.xla, grad_accum_steps=args.grad_accum_steps,
        steps_per_execution=args.steps_per_execution, data_sharding=args.data_sharding,
        checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every, seed=args.seed, init_checkpoint=args.init_checkpoint,
        attention_init=args.attention_init,
        shuffle_buffer_size=args.shuffle_buffer, eval_data=args.eval_data,
        eval_every=args.eval_every, eval_steps=args.eval_steps, progress=not args.no_progress,
        text=args.text, vocab_file=args.vocab, lowercase=not args.cased,
        whole_word_mask=args.whole_word_mask, word_segmenter=args.word_segmenter,
        masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
        eval_text=args.eval_text, probe_every=args.probe_every,
        probe_batches=args.probe_batches, overwrite=args.overwrite)
    result = run_pretraining(config)
    summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.logs.items()))
    print(f"step {result.step}/{args.steps}" + (f": {summary}" if summary else ""))
    history = read_probe_history(os.path.join(args.out, PROBE_FILE))
    if history and not result.interrupted:
        last = history[-1]
        print(f"held-out MLM accuracy {last['mlm_accuracy']:.4f} vs unigram baseline "
              f"{last['unigram_accuracy']:.4f} ({last['accuracy_ratio']:.2f}x); NSP accuracy "
              f"{last['nsp_accuracy']:.4f} vs majority {last['nsp_majority']:.4f}")
    if result.interrupted:
        print(f"stopped by SIGTERM; saved {result.checkpoint}; rerun the same command to resume")
        return 143
    return 0


def main(argv=None) -> int:
    """`python -m bert_tf.commands.pretrain`: the subcommand without the `bert-tf` front end."""
    parser = argparse.ArgumentParser(prog="bert-tf pretrain", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"bert-tf pretrain: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
