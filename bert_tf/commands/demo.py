"""`bert-tf demo`: the main job on the embedded default (real MiniLM-L6 weights, real sentences)."""


def register(subparsers):
    p = subparsers.add_parser("demo", help="run the main job on the embedded default (no hub)")
    p.add_argument("--sentence", action="append", dest="sentences",
                   help="a sentence to embed (repeatable); default: a built-in set")
    p.add_argument("--model", default=None, help="model dir (default: the pinned MiniLM-L6)")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.demo import DEFAULT_SENTENCES, format_report, sentence_similarities
    result = sentence_similarities(args.sentences or DEFAULT_SENTENCES, model_dir=args.model)
    print(format_report(result))
    return 0
