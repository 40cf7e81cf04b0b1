"""`bert-tf convert`: move encoder weights between checkpoint formats (strict both ways)."""

FORMATS = ("huggingface", "google", "keras_hub")


def register(subparsers):
    p = subparsers.add_parser(
        "convert", help="convert encoder weights between HF, google-research/bert, KerasHub formats")
    p.add_argument("--input", required=True,
                   help="checkpoint: HF dir, google dir, KerasHub preset dir, Model Garden checkpoint or .keras")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--format", choices=FORMATS, default="huggingface", help="output format")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.models.pretrained import convert_checkpoint
    path = convert_checkpoint(args.input, args.output, args.format)
    print(f"wrote {args.format} checkpoint to {path}")
    return 0
