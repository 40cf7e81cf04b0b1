"""`bert-tf demo`: the main job on the embedded default (MiniLM-L6 -> sentiment -> SavedModel + TFLite)."""


def register(subparsers):
    p = subparsers.add_parser("demo", help="fine-tune MiniLM-L6 on Rotten Tomatoes, evaluate, "
                                           "export SavedModel + TFLite, answer sentences (no hub)")
    p.add_argument("--sentence", action="append", dest="sentences",
                   help="a sentence to classify at the end (repeatable); default: a built-in set")
    p.add_argument("--model", default=None, help="model dir to start from (default: the pinned MiniLM-L6)")
    p.add_argument("--out", default=".", help="writes OUT/saved_models/ and OUT/demo_output/")
    p.add_argument("--train-examples", type=int, default=None)
    p.add_argument("--max-train-seconds", type=float, default=None,
                   help="stop fine-tuning after this many seconds (default 180)")
    p.add_argument("--quick", action="store_true", help="a bounded run (tiny training, test sample)")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.demo import DemoOptions, format_report, run_demo
    overrides = {"out": args.out, "model_dir": args.model}
    if args.sentences:
        overrides["sentences"] = tuple(args.sentences)
    if args.train_examples is not None:
        overrides["train_examples"] = args.train_examples
    if args.max_train_seconds is not None:
        overrides["max_train_seconds"] = args.max_train_seconds
    options = DemoOptions.quick(**overrides) if args.quick else DemoOptions(**overrides)
    print(format_report(run_demo(options)))
    return 0
