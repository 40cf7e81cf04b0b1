"""`bert-tf vocab`: learn a WordPiece vocab.txt from text files (one sentence or document a line)."""

import sys


def register(subparsers):
    p = subparsers.add_parser(
        "vocab", help="learn a WordPiece vocabulary from text files",
        description="Learns a WordPiece vocabulary: the special tokens, every character seen at "
                    "least --min-char-count times (CJK ideographs and punctuation as whole-word "
                    "tokens, other characters as both 'c' and '##c'), then word pieces. Prints the "
                    "size, the characters by script and the [UNK] rate on the corpus itself "
                    "(a warning on stderr above 0.5%).")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="UTF-8 text files, one sentence or document per line")
    p.add_argument("--size", type=int, required=True,
                   help="vocabulary size, special and --unused tokens included: reached exactly "
                        "(tolerance 0) unless the corpus runs out of pieces seen --min-count "
                        "times; then a warning and a smaller vocabulary")
    p.add_argument("--output", required=True, help="vocab.txt to write (atomically)")
    p.add_argument("--cased", action="store_true",
                   help="keep case and accents (default: uncased, NFD + strip accents + lowercase)")
    p.add_argument("--unused", type=int, default=0, metavar="N",
                   help="reserve N [unusedK] slots after the special tokens (default 0)")
    p.add_argument("--min-count", type=int, default=2,
                   help="fewest occurrences of a learned multi-character word piece (default 2)")
    p.add_argument("--min-char-count", type=int, default=2,
                   help="fewest occurrences of a character to be in the vocabulary before any word "
                        "piece (default 2; rarer characters only fill room the pieces leave)")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.text.vocab_learning import learn_vocabulary_file
    report = learn_vocabulary_file(args.input, args.output, args.size, lowercase=not args.cased,
                                   num_unused=args.unused, min_count=args.min_count,
                                   min_char_count=args.min_char_count)
    for warning in report.warnings:
        print(f"bert-tf vocab: warning: {warning}", file=sys.stderr)
    print(f"wrote {report.size} tokens to {args.output}")
    for line in report.summary_lines():
        print(f"  {line}")
    return 0
