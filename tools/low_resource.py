"""BERT for a language with no pre-trained model, end to end on real data, with its baselines:
learn a vocabulary -> pre-train a small BERT from scratch -> fine-tune sentiment and NER -> score
the test splits, against (b) the same fine-tuning from a randomly initialized encoder and (c) a
character n-gram logistic regression (tf-idf of 1-2-grams for sentiment; per character over its
n-gram window for NER).

    python tools/low_resource.py --language zh --out runs/zh                  # the ~30-minute recipe
    python tools/low_resource.py --language zh --out runs/zh_quick --quick    # minutes, a smoke run
    python tools/low_resource.py --language sa --out runs/sa                  # Sanskrit (cased)
    python tools/low_resource.py --language zh --out runs/zh --seeds 0,1,2    # (a)/(b) mean ± std
    python tools/low_resource.py --language zh --out runs/zh_nb --attention-init neighbours

Every stage is the CLI a user runs (`bert-tf dataset`, `vocab`, `pretrain`, `finetune`,
`evaluate`), called in this process; a rerun with the same options reuses the finished stages.
Chinese data: `chinese_text` (People's Daily 1998 paragraphs + product reviews of the train
split) for the vocabulary and pre-training, its dev split held out for the MLM probe, and
`chinese_reviews` (17,363 reviews, fixed 80/10/10 split) for sentiment, `peoples_daily_ner`
(characters tagged PER/LOC/ORG; a seeded sample of its sentences) for NER. Sanskrit (no pre-trained
BERT exists for it): `sanskrit_text` (Digital Corpus of Sanskrit, chapters split 80/10/10) and
`sanskrit_source` (which of four texts a verse comes from), all cased. OUT/results.json holds
every number (OUT/results_<N>labels.json for a `--train-limit N` run); the table is printed at the
end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

@dataclasses.dataclass(frozen=True)
class Language:
    text: str                       # raw text dataset (train/dev/test.txt)
    classification: str            # labelled sentence classification dataset (CSV)
    ner: str | None = None          # character/token tagging dataset (CoNLL), if any
    cased: bool = False             # keep case and accents (Sanskrit's long vowels are accents)
    max_length: int = 128           # fine-tuning sequence length (pre-training: the recipe's seq)


LANGUAGES = {
    "zh": Language("chinese_text", "chinese_reviews", "peoples_daily_ner"),
    # Sanskrit: which of four texts (two epics, a purana, a medical treatise) a verse is from.
    # Verse lines are short: 64 pieces hold nearly all of them (docs/results.md).
    "sa": Language("sanskrit_text", "sanskrit_source", cased=True, max_length=64),
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
    finetune_epochs: float = 3.0
    finetune_lr: float = 2e-4
    finetune_batch: int = 32
    train_limit: int | None = None      # sentiment training examples (None: all)
    test_limit: int | None = None
    ner_train_limit: int | None = 8000  # NER sentences (the corpus has 36k: CPU time)
    ner_test_limit: int | None = 2000
    ner_epochs: float = 10.0            # its own schedule: see docs/results.md, Chinese NER
    ner_lr: float = 1e-3
    seeds: tuple = (0,)                 # fine-tuning seeds (and (b)'s random encoder): the mean
    attention_init: str = "random"      # `bert-tf pretrain --attention-init` for (a)'s encoder
    ner: bool = True                    # also fine-tune NER where the language has a tagged set

    @classmethod
    def quick(cls):
        return cls(vocab_size=3000, hidden=64, layers=2, heads=2, seq=64, pretrain_steps=300,
                   finetune_epochs=1.0, finetune_lr=2e-4, train_limit=2000, test_limit=400,
                   ner_train_limit=500, ner_test_limit=200, ner_epochs=1.0, ner_lr=2e-4)


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


def _random_init(config_path: str, vocab: str, out: str, seed: int) -> str:
    """A randomly initialized encoder (weights drawn with `seed`) in the layout `finetune --init`
    reads: baseline (b)."""
    import shutil

    import keras

    from bert_tf import BertConfig
    from bert_tf.models import BertEncoder, BertPretrainer
    if not os.path.isfile(os.path.join(out, "model.safetensors")):
        keras.utils.set_random_seed(seed)
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


def _limit_conll(src: str, dst: str, limit: int | None) -> str:
    """`limit` sentences of a CoNLL file picked by a seeded shuffle."""
    if limit is None:
        return src
    import random

    from bert_tf.data import conll
    sentences = conll.read_conll(src)
    random.Random(0).shuffle(sentences)
    conll.write_conll(dst, sentences[:limit])
    return dst


def _char_features(chars, i):
    """The window features of character i: unigrams at -2..+2, bigrams at -1..+1."""
    def at(j):
        return chars[j] if 0 <= j < len(chars) else "<s>"
    return {f"u{d}={at(i + d)}": 1 for d in (-2, -1, 0, 1, 2)} | \
        {f"b{d}={at(i + d)}{at(i + d + 1)}": 1 for d in (-1, 0)}


def _ngram_ner_baseline(train_conll: str, test_conll: str) -> dict:
    """(c) for NER: a logistic regression per character over its character n-gram window
    (hashed), tags scored as entities by seqeval like the fine-tuned models."""
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import LogisticRegression

    from bert_tf import metrics
    from bert_tf.data import conll
    train, test = conll.read_conll(train_conll), conll.read_conll(test_conll)
    hasher = FeatureHasher(n_features=2 ** 20, input_type="dict")

    def features(sentences):
        return hasher.transform(_char_features(chars, i) for chars, _ in sentences
                                for i in range(len(chars)))
    classifier = LogisticRegression(max_iter=300, C=1.0)
    classifier.fit(features(train), [t for _, tags in train for t in tags])
    flat = list(classifier.predict(features(test)))
    predicted, start = [], 0
    for chars, _ in test:
        predicted.append(flat[start:start + len(chars)])
        start += len(chars)
    return metrics.entity_metrics([tags for _, tags in test], predicted)


def _finetune(task: str, init: str, vocab: str, train: str, dev: str, test: str, out: str,
              recipe: Recipe, epochs: float, learning_rate: float, cased: list, seed: int,
              max_length: int) -> dict:
    from bert_tf.tasks import evaluate
    # A finished run with these settings is reused as it is; one with other settings (an older
    # recipe's schedule) is refused by the CLI, not silently scored.
    _cli("finetune", task, "--init", init, "--vocab", vocab, "--train", train, "--eval",
         dev, "--out", out, "--max-length", max_length, "--epochs", epochs,
         "--learning-rate", learning_rate, "--batch-size", recipe.finetune_batch,
         "--seed", seed, "--no-progress", *cased)
    return evaluate(out, test)


def _seed_suffix(seed: int) -> str:
    """Seed 0's outputs keep the unsuffixed names (the single-seed recipe's)."""
    return "" if seed == 0 else f"_seed{seed}"


def _seeded(label: str, task: str, metric: str, inits: dict, out: str, recipe: Recipe,
            timings: dict, **finetune) -> dict:
    """(a) and (b) fine-tuned once per recipe seed: per-seed test metrics and their mean/std
    (one seed's gap between (a) and (b) is within the noise of a single run)."""
    import statistics
    results = {}
    for name, init_for_seed in inits.items():
        runs = []
        for seed in recipe.seeds:
            t = time.perf_counter()
            suffix = _seed_suffix(seed)
            scores = _finetune(task, init_for_seed(seed), out=os.path.join(
                out, f"{label}_{name}{suffix}"), recipe=recipe, seed=seed, **finetune)
            timings[f"{label}_{name}{suffix}"] = time.perf_counter() - t
            runs.append(scores[metric])
        results[name] = {metric: statistics.fmean(runs), "seeds": list(recipe.seeds),
                         "per_seed": runs,
                         "std": statistics.stdev(runs) if len(runs) > 1 else 0.0}
    return results


def run(language: str, out: str, recipe: Recipe, pretrained_run: str | None = None,
        vocab_file: str | None = None) -> dict:
    from bert_tf.training.pretraining import PROBE_FILE, read_probe_history
    lang = LANGUAGES[language]
    text_set, sentiment_set, ner_set = lang.text, lang.classification, lang.ner
    cased = ["--cased"] if lang.cased else []
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

    vocab = vocab_file or os.path.join(out, "vocab.txt")
    if not os.path.isfile(vocab):
        t = time.perf_counter()
        _cli("vocab", "--input", os.path.join(text_dir, "train.txt"), "--size", recipe.vocab_size,
             "--output", vocab, *cased)
        timings["vocab"] = time.perf_counter() - t
    with open(vocab, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    config = _model_config(recipe, vocab_size, os.path.join(out, "bert_config.json"))

    pretrained = pretrained_run or os.path.join(out, "pretrain")
    t = time.perf_counter()
    if not pretrained_run:
        _cli("pretrain", "--config", config, "--text", os.path.join(text_dir, "train.txt"), "--vocab",
             vocab, "--eval-text", os.path.join(text_dir, "dev.txt"), "--out", pretrained,
             "--steps", recipe.pretrain_steps, "--batch-size", recipe.pretrain_batch,
             "--max-seq-length", recipe.seq, "--max-predictions-per-seq",
             max(5, recipe.seq * 20 // 128), "--checkpoint-every",
             max(100, recipe.pretrain_steps // 8), "--attention-init", recipe.attention_init,
             "--no-progress", *cased)
    timings["pretrain"] = time.perf_counter() - t
    probes = read_probe_history(os.path.join(pretrained, PROBE_FILE))

    results = {"language": language, "recipe": dataclasses.asdict(recipe), "vocab_size": vocab_size,
               "probe": probes}
    inits = {"a_pretrained": lambda seed: os.path.join(pretrained, "pretrained"),
             "b_random": lambda seed: _random_init(
                 config, vocab, os.path.join(out, "random_init" + _seed_suffix(seed)), seed)}
    max_length = min(lang.max_length, recipe.seq)
    # A few-labels run keeps its own fine-tuning outputs (a rerun reuses finished ones by name).
    labels = "" if recipe.train_limit is None else f"_{recipe.train_limit}labels"
    results["sentiment"] = _seeded("sentiment" + labels, "classify", "accuracy", inits, out, recipe,
                                   timings, vocab=vocab, train=train, dev=dev, test=test,
                                   epochs=recipe.finetune_epochs,
                                   learning_rate=recipe.finetune_lr, cased=cased,
                                   max_length=max_length)
    t = time.perf_counter()
    results["sentiment"]["c_char_ngram_lr"] = _ngram_baseline(train, test)
    timings["sentiment_c_char_ngram_lr"] = time.perf_counter() - t
    if ner_set and recipe.ner:
        ner_dir = os.path.join(out, "ner")
        if not os.path.isfile(os.path.join(ner_dir, "test.conll")):
            _cli("dataset", ner_set, "--out", ner_dir)
        ner = {split: _limit_conll(os.path.join(ner_dir, f"{split}.conll"),
                                   os.path.join(out, f"ner_{split}_limited.conll"),
                                   recipe.ner_train_limit if split == "train"
                                   else recipe.ner_test_limit)
               for split in ("train", "dev", "test")}
        results["ner"] = _seeded("ner", "ner", "f1", inits, out, recipe, timings, vocab=vocab,
                                 train=ner["train"], dev=ner["dev"], test=ner["test"],
                                 epochs=recipe.ner_epochs, learning_rate=recipe.ner_lr,
                                 cased=cased, max_length=max_length)
        t = time.perf_counter()
        results["ner"]["c_char_ngram_lr"] = _ngram_ner_baseline(ner["train"], ner["test"])
        timings["ner_c_char_ngram_lr"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    results["seconds"] = timings
    with open(os.path.join(out, f"results{labels}.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return results


def _cell(scores: dict, metric: str) -> str:
    if len(scores.get("per_seed", ())) > 1:
        return f"{scores[metric]:.4f} ± {scores['std']:.4f} ({len(scores['per_seed'])} seeds)"
    return f"{scores[metric]:.4f}"


def print_table(results: dict) -> None:
    last = results["probe"][-1] if results["probe"] else None
    if last:
        print(f"pre-training: held-out MLM accuracy {last['mlm_accuracy']:.4f} vs unigram "
              f"{last['unigram_accuracy']:.4f} ({last['accuracy_ratio']:.2f}x) at step "
              f"{last['step']}")
    tasks = [("sentiment", "accuracy")] + ([("ner", "f1")] if "ner" in results else [])
    print("| | " + " | ".join(f"{task} test {metric}" for task, metric in tasks) + " |")
    print("|---|" + "---|" * len(tasks))
    for key, name in (("a_pretrained", "(a) fine-tuned from the pre-trained model"),
                      ("b_random", "(b) fine-tuned from a random encoder"),
                      ("c_char_ngram_lr", "(c) character n-gram logistic regression")):
        cells = " | ".join(_cell(results[task][key], metric) for task, metric in tasks)
        print(f"| {name} | {cells} |")
    print("(the classification column is sentiment for zh, source text for sa)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=sorted(LANGUAGES), default="zh")
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (minutes), for tests")
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None, help="encoder layers (recipe: %d)"
                        % Recipe.layers)
    parser.add_argument("--pretrain-batch", type=int, default=None,
                        help="pre-training batch size (recipe: %d)" % Recipe.pretrain_batch)
    parser.add_argument("--attention-init", choices=("random", "neighbours"), default="random",
                        help="pre-training's start (`bert-tf pretrain --attention-init`)")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated fine-tuning seeds for (a) and (b), reported as "
                             "mean ± std (default: 0)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="fine-tune the classifier on this many labelled examples (a seeded "
                             "sample) instead of the whole train split: the few-labels setting")
    parser.add_argument("--pretrained-run", default=None,
                        help="a finished `bert-tf pretrain --text` OUT to fine-tune from instead of "
                             "pre-training (its --vocab must be given as --vocab)")
    parser.add_argument("--vocab", default=None, help="with --pretrained-run: its vocab.txt")
    parser.add_argument("--no-ner", action="store_true",
                        help="fine-tune and score the classification task only")
    args = parser.parse_args(argv)
    if bool(args.pretrained_run) != bool(args.vocab):
        parser.error("--pretrained-run and --vocab go together")
    recipe = Recipe.quick() if args.quick else Recipe()
    if args.pretrain_steps:
        recipe.pretrain_steps = args.pretrain_steps
    if args.layers:
        recipe.layers = args.layers
    if args.pretrain_batch:
        recipe.pretrain_batch = args.pretrain_batch
    if args.seeds:
        try:
            recipe.seeds = tuple(sorted({int(seed) for seed in args.seeds.split(",")}))
        except ValueError:
            parser.error(f"--seeds takes comma-separated integers, not {args.seeds!r}")
    if args.train_limit:
        recipe.train_limit = args.train_limit
    recipe.attention_init = args.attention_init
    recipe.ner = not args.no_ner
    print_table(run(args.language, args.out, recipe, args.pretrained_run, args.vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
