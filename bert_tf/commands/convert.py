"""`bert-tf convert`: move encoder weights between checkpoint formats (strict both ways), or write a
fine-tuned model directory with its task head as transformers' `BertFor*` or a
google-research/bert fine-tuning checkpoint."""

FORMATS = ("huggingface", "google", "keras_hub")


def register(subparsers):
    p = subparsers.add_parser(
        "convert", help="convert encoder weights between HF, google-research/bert, KerasHub "
                        "formats; a fine-tuned model with its head and labels")
    p.add_argument("--input", required=True,
                   help="checkpoint: HF dir, google dir, KerasHub preset dir, Model Garden "
                        "checkpoint or .keras; or a fine-tuned model directory (task.json): "
                        "written with its head and labels")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--format", choices=FORMATS, default="huggingface", help="output format")
    p.set_defaults(run=run)


def run(args) -> int:
    import os

    from bert_tf import fileio
    from bert_tf.tasks.model_dir import TASK_FILE
    if fileio.isfile(os.path.join(args.input, TASK_FILE)):
        from bert_tf.tasks.interchange import export_model_dir
        path = export_model_dir(args.input, args.output, args.format)
        print(f"wrote the fine-tuned model as a {args.format} model to {path}")
        return 0
    from bert_tf.models.pretrained import convert_checkpoint
    path = convert_checkpoint(args.input, args.output, args.format)
    print(f"wrote {args.format} checkpoint to {path}")
    return 0
