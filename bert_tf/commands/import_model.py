"""`bert-tf import`: a model fine-tuned elsewhere as a bert_tf model directory, which predict,
evaluate, explain and both exports read like one `bert-tf finetune` wrote."""

FROM_FORMATS = ("huggingface",)


def register(subparsers):
    p = subparsers.add_parser(
        "import", help="a Hugging Face BertForSequenceClassification / TokenClassification / "
                       "QuestionAnswering directory as a bert_tf model directory")
    p.add_argument("source", metavar="SRC", help="the fine-tuned model's directory (config.json, "
                   "model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt)")
    p.add_argument("--from", dest="source_format", choices=FROM_FORMATS, default="huggingface",
                   help="the source's format")
    p.add_argument("--out", required=True, help="the model directory to write (must not exist)")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per input window (default: the tokenizer's model_max_length, at "
                        "most the model's position embeddings)")
    p.add_argument("--pair", action="store_true",
                   help="a sequence classifier over sentence pairs (input columns text, "
                        "text_pair)")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from bert_tf.tasks.interchange import import_huggingface
    from bert_tf.tasks.model_dir import FinetunedModel
    out = import_huggingface(args.source, args.out, max_length=args.max_length, pair=args.pair)
    loaded = FinetunedModel.load(out)
    print(json.dumps({"out": out, "task": loaded.task_type, "labels": list(loaded.task.label_names),
                      "max_length": loaded.settings["max_length"],
                      "lowercase": loaded.settings["lowercase"]}, ensure_ascii=False))
    return 0
