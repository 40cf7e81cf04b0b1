"""`bert-tf import`: a model fine-tuned elsewhere as a bert_tf model directory, which predict,
evaluate, explain and both exports read like one `bert-tf finetune` wrote."""

FROM_FORMATS = ("huggingface", "keras_hub", "model_garden")


def register(subparsers):
    p = subparsers.add_parser(
        "import", help="a Hugging Face BertForSequenceClassification / TokenClassification / "
                       "QuestionAnswering directory, a KerasHub BertTextClassifier preset or a "
                       "Model Garden task checkpoint as a bert_tf model directory")
    p.add_argument("source", metavar="SRC", help="the fine-tuned model's directory (transformers: "
                   "config.json, model.safetensors or pytorch_model.bin, tokenizer.json or "
                   "vocab.txt; KerasHub: the preset directory save_to_preset wrote; Model "
                   "Garden: a tf.train.Checkpoint(model=...) prefix or directory)")
    p.add_argument("--from", dest="source_format", choices=FROM_FORMATS, default="huggingface",
                   help="the source's format")
    p.add_argument("--out", required=True, help="the model directory to write (must not exist)")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per input window (default: the tokenizer's model_max_length, at "
                        "most the model's position embeddings)")
    p.add_argument("--pair", action="store_true",
                   help="a sequence classifier over sentence pairs (input columns text, "
                        "text_pair)")
    p.add_argument("--task", default=None, choices=("classify", "regress", "ner", "squad"),
                   help="Model Garden: the checkpoint's task (it holds weights only)")
    p.add_argument("--vocab", default=None, help="Model Garden: the vocab.txt it was trained with")
    p.add_argument("--cased", action="store_true", help="Model Garden: a cased vocabulary")
    p.add_argument("--labels", default=None,
                   help="comma-separated class names in id order (KerasHub presets keep none; "
                        "for transformers, instead of id2label)")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from bert_tf.tasks.interchange import (import_huggingface, import_keras_hub,
                                           import_model_garden)
    from bert_tf.tasks.model_dir import FinetunedModel
    labels = None
    if args.labels is not None:
        labels = [name.strip() for name in args.labels.split(",")]
        if not all(labels):
            raise ValueError(f"--labels {args.labels!r}: an empty label name")
    if args.source_format == "model_garden":
        if args.task is None:
            raise ValueError("--task is required with --from model_garden (a checkpoint holds "
                             "weights only)")
        out = import_model_garden(args.source, args.out, args.task, args.vocab,
                                  lowercase=not args.cased, max_length=args.max_length or 128,
                                  pair=args.pair, labels=labels)
    else:
        given = [f for f, v in (("--task", args.task), ("--vocab", args.vocab),
                                ("--cased", args.cased)) if v]
        if given:
            raise ValueError(f"{', '.join(given)}: only for --from model_garden (the source "
                             f"directory names its task and tokenizer)")
        read = import_huggingface if args.source_format == "huggingface" else import_keras_hub
        out = read(args.source, args.out, max_length=args.max_length, pair=args.pair,
                   labels=labels)
    loaded = FinetunedModel.load(out)
    print(json.dumps({"out": out, "task": loaded.task_type, "labels": list(loaded.task.label_names),
                      "max_length": loaded.settings["max_length"],
                      "lowercase": loaded.settings["lowercase"]}, ensure_ascii=False))
    return 0
