"""`bert-tf dataset`: write a built-in real dataset's fixed splits to files the task readers read."""

from bert_tf.data.datasets import DATASETS

# the datasets written as CSV / TSV / JSON Lines (--format)
CLASSIFICATION_DATASETS = ("rotten_tomatoes", "chinese_reviews", "sanskrit_source", "wiki_sections")


def register(subparsers):
    p = subparsers.add_parser(
        "dataset", help="write a built-in real dataset (pinned package, fixed 80/10/10 split) to files")
    p.add_argument("name", choices=DATASETS,
                   help="rotten_tomatoes (sentiment), wnut_ner (tweet NER), squad_fixture (SQuAD v1.1, "
                        "5 questions), chinese_reviews (Chinese sentiment), peoples_daily_ner "
                        "(Chinese NER, characters), chinese_text (raw text for pre-training), "
                        "sanskrit_text (Digital Corpus of Sanskrit, raw text for pre-training, split "
                        "by chapter), sanskrit_source (which of 4 Sanskrit texts a sentence is from; "
                        "use a --cased vocab and tokenizer for Sanskrit), wiki_sections (retrieval "
                        "pairs for `finetune embed`, split 60/20/20 by article)")
    p.add_argument("--out", required=True, help="directory for <split>.<ext> files (created)")
    p.add_argument("--format", choices=("csv", "tsv", "jsonl"), default=None,
                   help="file format of the classification sets (default csv); the NER sets are always "
                        "CoNLL, squad JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.data import datasets
    if args.format and args.name not in CLASSIFICATION_DATASETS:
        raise ValueError(f"--format applies to {', '.join(CLASSIFICATION_DATASETS)} only; "
                         f"{args.name} has one format")
    extension = f".{args.format}" if args.format else None
    paths = datasets.write_dataset(args.name, args.out, extension=extension)
    for split, path in paths.items():
        print(f"{split}\t{path}")
    return 0
