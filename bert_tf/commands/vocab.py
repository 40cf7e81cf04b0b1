"""`bert-tf vocab`: learn a WordPiece vocab.txt from text files (one sentence or document a line)."""


def register(subparsers):
    p = subparsers.add_parser("vocab", help="learn a WordPiece vocabulary from text files")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="UTF-8 text files, one sentence or document per line")
    p.add_argument("--size", type=int, required=True,
                   help="target vocabulary size (maximum; the learner lands within 5%% below)")
    p.add_argument("--output", required=True, help="vocab.txt to write (atomically)")
    p.add_argument("--cased", action="store_true",
                   help="keep case and accents (default: uncased, NFD + strip accents + lowercase)")
    p.add_argument("--unused", type=int, default=0, metavar="N",
                   help="reserve N [unusedK] slots after the special tokens (default 0)")
    p.add_argument("--min-count", type=int, default=2,
                   help="lowest word-piece frequency the threshold search considers (default 2)")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.text.vocab_learning import learn_vocabulary_file
    vocab = learn_vocabulary_file(args.input, args.output, args.size, lowercase=not args.cased,
                                  num_unused=args.unused, lower_thresh=args.min_count)
    print(f"wrote {len(vocab)} tokens to {args.output}")
    return 0
