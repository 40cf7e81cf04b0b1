"""`bert-tf create-pretraining-data`: text files -> masked LM / NSP TFRecords (google-research/bert's rules)."""

from bert_tf.data.word_segmentation import WORD_SEGMENTERS


def register(subparsers):
    p = subparsers.add_parser(
        "create-pretraining-data",
        help="make masked LM + next sentence pre-training TFRecords from text files",
        description="Input: UTF-8 text, one sentence per line, a blank line between documents "
                    "(google-research/bert's format; --corpus writes it from a real corpus). "
                    "Output: DIR/pretraining-*-of-*.tfrecord[.gz] with google's feature names "
                    "and DIR/metadata.json. Deterministic for a fixed --random-seed.")
    p.add_argument("--input", nargs="+", metavar="FILES",
                   help="input files or globs (comma-separated lists allowed)")
    p.add_argument("--corpus", choices=("wikipedia", "sotu"),
                   help="instead of --input: write this pinned real corpus as sentence-per-line "
                        "text to DIR.txt and use it")
    p.add_argument("--vocab", required=True, help="vocab.txt the model uses")
    p.add_argument("--output", required=True, metavar="DIR", help="output directory (must be new or empty)")
    p.add_argument("--cased", action="store_true", help="keep case (for cased vocabularies)")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--max-predictions-per-seq", type=int, default=20)
    p.add_argument("--masked-lm-prob", type=float, default=0.15)
    p.add_argument("--dupe-factor", type=int, default=10,
                   help="times each document is used, with different pairs and masks")
    p.add_argument("--short-seq-prob", type=float, default=0.1)
    p.add_argument("--whole-word-mask", action="store_true", help="mask all pieces of a word together")
    p.add_argument("--word-segmenter", choices=WORD_SEGMENTERS, default="none",
                   help="with --whole-word-mask: where the words of text written without spaces "
                        "come from; jieba (the zh extra) for Chinese: all characters of a "
                        "segmented word are masked together, tokens stay characters")
    p.add_argument("--random-seed", type=int, default=12345)
    p.add_argument("--num-shards", type=int, default=1, help="number of output TFRecord files")
    p.add_argument("--gzip", action="store_true", help="GZIP-compress the TFRecord files")
    p.add_argument("--workers", type=int, default=None,
                   help="processes for pairing/masking (default: one per input file, up to the CPU count)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf import fileio
    from bert_tf.cli import CommandError
    from bert_tf.data import documents, pretraining

    if bool(args.input) == bool(args.corpus):
        raise CommandError("give exactly one of --input FILES or --corpus NAME")
    inputs = args.input
    if args.corpus:
        text_path = fileio.abspath(args.output.rstrip("/")) + ".txt"
        count = documents.write_documents(documents.corpus_documents(args.corpus), text_path)
        print(f"wrote {count} {args.corpus} documents to {text_path}")
        inputs = [text_path]
    options = pretraining.PretrainingOptions(
        max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, dupe_factor=args.dupe_factor,
        short_seq_prob=args.short_seq_prob, whole_word_mask=args.whole_word_mask,
        random_seed=args.random_seed, word_segmenter=args.word_segmenter)
    meta = pretraining.create_pretraining_data(
        inputs, args.vocab, args.output, options, lowercase=not args.cased,
        num_shards=args.num_shards, compression="GZIP" if args.gzip else None,
        num_workers=args.workers, overwrite=args.overwrite, show_progress=not args.no_progress)
    print(f"wrote {meta['num_instances']} instances ({meta['num_predictions']} masked LM "
          f"predictions, {meta['num_random_next']} random next) to {args.output} in "
          f"{len(meta['files'])} file(s)")
    return 0
