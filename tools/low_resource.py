"""BERT for a language with no pre-trained model, end to end on real data, with its baselines:
learn a vocabulary -> pre-train a small BERT from scratch -> fine-tune sentiment -> score the test
split, against (b) the same fine-tuning from a randomly initialized encoder and (c) a character
n-gram logistic regression.

    python tools/low_resource.py --language zh --out runs/zh                  # the ~30-minute recipe
    python tools/low_resource.py --language zh --out runs/zh_quick --quick    # minutes, for tests

Every stage is the CLI a user runs (`bert-tf dataset`, `vocab`, `pretrain`, `finetune`,
`evaluate`), called in this process; a rerun with the same options reuses the finished stages.
Chinese data: `chinese_text` (People's Daily 1998 paragraphs + product reviews of the train
split) for the vocabulary and pre-training, its dev split held out for the MLM probe, and
`chinese_reviews` (17,363 reviews, fixed 80/10/10 split) for sentiment. OUT/results.json holds
every number; the table is printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LANGUAGES = {
    # language: (raw text dataset, sentiment dataset, whole-word segmenter or None)
    "zh": ("chinese_text", "chinese_reviews", "jieba"),
}


@dataclasses.dataclass
class Recipe:
    vocab_size: int = 8000
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    seq: int = 128
    pretrain_steps: int = 4000
    pretrain_batch: int = 32
    finetune_epochs: float = 2.0
    finetune_lr: float = 1e-4
    finetune_batch: int = 32
    train_limit: int | None = None      # sentiment training examples (None: all)
    test_limit: int | None = None

    @classmethod
    def quick(cls):
        return cls(vocab_size=3000, hidden=64, layers=2, heads=2, seq=64, pretrain_steps=300,
                   finetune_epochs=1.0, finetune_lr=2e-4, train_limit=2000, test_limit=400)


def _cli(*argv) -> None:
    from bert_tf.cli import main
    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"`bert-tf {' '.join(map(str, argv))}` exited {code}")


def _limit(src: str, dst: str, limit: int | None) -> str:
    """`limit` data rows of a CSV picked by a seeded shuffle (the files keep the corpus order,
    where one label's rows come first)."""
    if limit is None:
        return src
    import csv
    import random
    with open(src, encoding="utf-8", newline="") as f:
        header, *rows = list(csv.reader(f))
    random.Random(0).shuffle(rows)
    with open(dst, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header] + rows[:limit])
    return dst


def _model_config(recipe: Recipe, vocab_size: int, path: str) -> str:
    from bert_tf import BertConfig
    BertConfig(vocab_size=vocab_size, hidden_size=recipe.hidden,
               num_hidden_layers=recipe.layers, num_attention_heads=recipe.heads,
               intermediate_size=4 * recipe.hidden,
               max_position_embeddings=max(128, recipe.seq)).to_json_file(path)
    return path


def _random_init(config_path: str, vocab: str, out: str) -> str:
    """A randomly initialized encoder in the layout `finetune --init` reads: baseline (b)."""
    import shutil

    import keras

    from bert_tf import BertConfig
    from bert_tf.models import BertEncoder, BertPretrainer
    if not os.path.isfile(os.path.join(out, "model.safetensors")):
        keras.utils.set_random_seed(0)
        BertPretrainer(BertEncoder(BertConfig.from_json_file(config_path))).save_pretrained(out)
    shutil.copy(vocab, os.path.join(out, "vocab.txt"))
    return out


def _ngram_baseline(train_csv: str, test_csv: str) -> dict:
    """(c): character 1-2-gram tf-idf + logistic regression (C tuned on nothing: 1.0)."""
    import csv

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def read(path):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return [r["text"] for r in rows], [r["label"] for r in rows]
    x_train, y_train = read(train_csv)
    x_test, y_test = read(test_csv)
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True,
                                 min_df=2)
    classifier = LogisticRegression(max_iter=2000, C=1.0)
    classifier.fit(vectorizer.fit_transform(x_train), y_train)
    predicted = classifier.predict(vectorizer.transform(x_test))
    return {"accuracy": float(sum(p == y for p, y in zip(predicted, y_test)) / len(y_test))}


def _finetune(init: str, vocab: str, train: str, dev: str, test: str, out: str,
              recipe: Recipe) -> dict:
    from bert_tf.tasks import evaluate
    if not os.path.isfile(os.path.join(out, "model.keras")):
        _cli("finetune", "classify", "--init", init, "--vocab", vocab, "--train", train, "--eval",
             dev, "--out", out, "--max-length", recipe.seq, "--epochs", recipe.finetune_epochs,
             "--learning-rate", recipe.finetune_lr, "--batch-size", recipe.finetune_batch,
             "--no-progress")
    return evaluate(out, test)


def run(language: str, out: str, recipe: Recipe) -> dict:
    from bert_tf.training.pretraining import PROBE_FILE, read_probe_history
    text_set, sentiment_set, _ = LANGUAGES[language]
    os.makedirs(out, exist_ok=True)
    timings, started = {}, time.perf_counter()
    text_dir, data_dir = os.path.join(out, "text"), os.path.join(out, "sentiment")
    if not os.path.isfile(os.path.join(text_dir, "train.txt")):
        _cli("dataset", text_set, "--out", text_dir)
    if not os.path.isfile(os.path.join(data_dir, "test.csv")):
        _cli("dataset", sentiment_set, "--out", data_dir)
    train = _limit(os.path.join(data_dir, "train.csv"), os.path.join(out, "train_limited.csv"),
                   recipe.train_limit)
    test = _limit(os.path.join(data_dir, "test.csv"), os.path.join(out, "test_limited.csv"),
                  recipe.test_limit)
    dev = _limit(os.path.join(data_dir, "dev.csv"), os.path.join(out, "dev_limited.csv"),
                 recipe.test_limit)

    vocab = os.path.join(out, "vocab.txt")
    if not os.path.isfile(vocab):
        t = time.perf_counter()
        _cli("vocab", "--input", os.path.join(text_dir, "train.txt"), "--size", recipe.vocab_size,
             "--output", vocab)
        timings["vocab"] = time.perf_counter() - t
    with open(vocab, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    config = _model_config(recipe, vocab_size, os.path.join(out, "bert_config.json"))

    pretrained = os.path.join(out, "pretrain")
    t = time.perf_counter()
    _cli("pretrain", "--config", config, "--text", os.path.join(text_dir, "train.txt"), "--vocab",
         vocab, "--eval-text", os.path.join(text_dir, "dev.txt"), "--out", pretrained,
         "--steps", recipe.pretrain_steps, "--batch-size", recipe.pretrain_batch,
         "--max-seq-length", recipe.seq, "--max-predictions-per-seq", max(5, recipe.seq * 20 // 128),
         "--checkpoint-every", max(100, recipe.pretrain_steps // 8), "--no-progress")
    timings["pretrain"] = time.perf_counter() - t
    probes = read_probe_history(os.path.join(pretrained, PROBE_FILE))

    results = {"language": language, "recipe": dataclasses.asdict(recipe), "vocab_size": vocab_size,
               "probe": probes}
    t = time.perf_counter()
    results["a_pretrained"] = _finetune(os.path.join(pretrained, "pretrained"), vocab, train, dev,
                                        test, os.path.join(out, "finetune_pretrained"), recipe)
    timings["finetune_pretrained"] = time.perf_counter() - t
    t = time.perf_counter()
    random_init = _random_init(config, vocab, os.path.join(out, "random_init"))
    results["b_random"] = _finetune(random_init, vocab, train, dev, test,
                                    os.path.join(out, "finetune_random"), recipe)
    timings["finetune_random"] = time.perf_counter() - t
    results["c_char_ngram_lr"] = _ngram_baseline(train, test)
    timings["total"] = time.perf_counter() - started
    results["seconds"] = timings
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return results


def print_table(results: dict) -> None:
    last = results["probe"][-1] if results["probe"] else None
    if last:
        print(f"pre-training: held-out MLM accuracy {last['mlm_accuracy']:.4f} vs unigram "
              f"{last['unigram_accuracy']:.4f} ({last['accuracy_ratio']:.2f}x) at step "
              f"{last['step']}")
    print("| sentiment test accuracy | |\n|---|---|")
    for key, name in (("a_pretrained", "(a) fine-tuned from the pre-trained model"),
                      ("b_random", "(b) fine-tuned from a random encoder"),
                      ("c_char_ngram_lr", "(c) character 1-2-gram tf-idf + logistic regression")):
        print(f"| {name} | {results[key]['accuracy']:.4f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=sorted(LANGUAGES), default="zh")
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (minutes), for tests")
    parser.add_argument("--pretrain-steps", type=int, default=None)
    args = parser.parse_args(argv)
    recipe = Recipe.quick() if args.quick else Recipe()
    if args.pretrain_steps:
        recipe.pretrain_steps = args.pretrain_steps
    print_table(run(args.language, args.out, recipe))
    return 0


if __name__ == "__main__":
    sys.exit(main())
