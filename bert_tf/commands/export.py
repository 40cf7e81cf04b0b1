"""`bert-tf export saved-model|tflite`: TF Serving SavedModel and TFLite model of a fine-tuned model."""


def register(subparsers):
    p = subparsers.add_parser("export", help="export a fine-tuned model (TF Serving SavedModel, TFLite)")
    kinds = p.add_subparsers(dest="export_kind", metavar="KIND")
    kinds.required = True

    s = kinds.add_parser("saved-model", help="SavedModel in TF Serving's layout OUT/<version>/")
    s.add_argument("--model", required=True, help="fine-tuned model dir (`bert-tf finetune --out`; "
                   "its task.json defines the signatures) or a bare .keras file + --vocab")
    s.add_argument("--out", required=True, help="model dir, e.g. saved_models/sentiment")
    s.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    s.add_argument("--vocab", default=None, help="vocab.txt (bare .keras file only)")
    s.add_argument("--pair", action="store_true",
                   help="bare .keras classifier only: serving_default also takes text_pair (a "
                        "model dir's task.json says whether it is a pair model)")
    s.add_argument("--cased", action="store_true", help="bare .keras file only: cased vocab")
    s.add_argument("--max-length", type=int, default=None,
                   help="bare .keras file only: tokens per sequence (default 128)")
    s.add_argument("--trim-bucket", type=int, default=None, metavar="N",
                   help="cut each batch's trailing padding to a multiple of N positions before the "
                        "encoder (exact; 0: always run the full sequence length; default: 8 with "
                        "--xla, which compiles one executable per length, else 1)")
    s.add_argument("--group-size", type=int, default=8, metavar="N",
                   help="with --no-pack: with trimming, "
                        "sort each batch by length and run N rows at a time, each group cut to "
                        "its own longest row (0: cut the whole batch at once; default 8)")
    s.add_argument("--xla", action="store_true",
                   help="compile the model with XLA inside the signatures (faster on CPU; TF "
                        "Serving then needs --xla_cpu_compilation_enabled=true)")
    s.add_argument("--no-pack", action="store_true",
                   help="run the padded [batch, length] layout (in length groups) instead of "
                        "packed real tokens (and a classifier's [CLS]-only last layer)")
    s.set_defaults(run=run_saved_model)

    t = kinds.add_parser("tflite", help="fixed-shape TFLite model, verified against Keras")
    t.add_argument("--model", required=True, help="fine-tuned model dir (or a .keras file + --vocab)")
    t.add_argument("--out", required=True, help="output .tflite file")
    t.add_argument("--quantize", choices=("none", "float16", "dynamic", "int8"), default="none")
    t.add_argument("--with-tokenizer", action="store_true",
                   help="require the tokenizer inside (an error for tasks whose serving path does "
                        "not fit TFLite: NER and SQuAD take ids and are windowed on the host)")
    t.add_argument("--without-tokenizer", action="store_true",
                   help="ids only (serve_ids); by default classifiers and regressors keep the "
                        "tokenizer and the task's decoding inside (serving_default takes text)")
    t.add_argument("--sequence-length", type=int, default=None,
                   help="fixed sequence length (default: the model's max length from task.json)")
    t.add_argument("--lengths", default=None, metavar="L1,L2,...",
                   help="also add signatures for these shorter sequence lengths (e.g. 16,32,64) "
                        "to the same file; a runner (bert_tf.export.TFLiteTaskRunner) runs each "
                        "input at the shortest that fits, instead of padding to the full length")
    t.add_argument("--vocab", default=None, help="vocab.txt (for a bare .keras)")
    t.add_argument("--dataset", default=None,
                   help="calibration/verification data (default: the task's dataset)")
    t.add_argument("--verify-examples", type=int, default=None,
                   help="verify on the first N test examples (default: the whole test split)")
    t.add_argument("--no-verify", action="store_true", help="skip running it against Keras")
    t.add_argument("--keep-unverified", action="store_true",
                   help="keep the .tflite when verification fails (the command still fails); by "
                        "default a model whose verification fails is not written")
    t.set_defaults(run=run_tflite)


def run_saved_model(args) -> int:
    from bert_tf.export import export_saved_model, servability_report
    from bert_tf.export.errors import ExportError
    from bert_tf.tasks.model_dir import load_model_source
    for flag, value in (("--trim-bucket", args.trim_bucket), ("--group-size", args.group_size)):
        if value is not None and value < 0:
            raise ExportError(f"{flag} must be >= 0, got {value}")
    source = load_model_source(
        args.model, vocab=args.vocab, lowercase=False if args.cased else None,
        max_length=args.max_length,
        task_settings={"text_pair_column": "text_pair"} if args.pair else None)
    path = export_saved_model(source, args.out, version=args.version,
                              trim_bucket="auto" if args.trim_bucket is None else args.trim_bucket,
                              group_size=args.group_size,
                              jit_compile=args.xla, pack=False if args.no_pack else "auto")
    outside = servability_report(path)
    print(f"wrote {path}")
    print("servable by stock TF Serving: " + ("yes" if not outside else f"NO, ops {outside}")
          + (" (XLA: start it with --xla_cpu_compilation_enabled=true)" if args.xla else ""))
    return 0 if not outside else 1


def parse_lengths(text):
    """--lengths "16,32,64" → (16, 32, 64); one clear error for anything else."""
    from bert_tf.export.errors import ExportError
    if text is None:
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ExportError(f"--lengths takes comma-separated integers like 16,32,64, got "
                          f"{text!r}") from None


def run_tflite(args) -> int:
    from bert_tf.export.tflite_tool import convert_and_verify
    report = convert_and_verify(args.model, args.out, quantize=args.quantize,
                                with_tokenizer=(False if args.without_tokenizer else
                                                True if args.with_tokenizer else None),
                                sequence_length=args.sequence_length, vocab=args.vocab,
                                dataset=args.dataset, verify_examples=args.verify_examples,
                                verify=not args.no_verify,
                                keep_unverified=args.keep_unverified,
                                lengths=parse_lengths(args.lengths))
    print(f"wrote {report['path']}")
    return 0
