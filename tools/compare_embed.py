"""Sentence-embedding fine-tuning, bert_tf vs sentence-transformers, on real retrieval pairs.

    python tools/compare_embed.py --seeds 0,1,2 --epochs 1 --out runs/cmp_embed

Data: `wiki_sections` (`bert_tf.data.datasets`): 1,497 (query, passage) pairs from the Wikipedia
articles in the pinned gensim wheel — "Title" → the lead's first paragraph, "Title: Section" →
that section's — split by article 60/20/20 (760 / 357 / 380 pairs), so test passages come from
articles neither side trained on. Every query of a split is ranked against every passage of the
split by cosine: recall@1 (the selection metric), recall@10, MRR@10 (`retrieval_metrics`, one
implementation for both sides).

Rows: zero-shot all-MiniLM-L6-v2 (the embedded default) through bert_tf and through
sentence-transformers (the same vectors, so the same scores); then, per seed, the same model
fine-tuned on the training pairs by `bert-tf finetune embed` and by sentence-transformers, with
the same recipe: in-batch negatives (MultipleNegativesRankingLoss, scale 20), batch `--batch-size`,
learning rate with linear warmup over `--warmup` of the steps then linear decay, weight decay 0.01
(not on biases and LayerNorm), global-norm clipping 1.0, dropout 0.1, `--max-length` tokens, the
dev split scored after every epoch and the best epoch scored on test.

The sentence-transformers side is its model and loss trained by the loop its classic `fit` ran
(torch AdamW, WarmupLinear, max_grad_norm 1; the `fit` of sentence-transformers 6 needs the
`datasets`/`accelerate` stack, which is not installed here). The optimizers differ as the two
libraries' defaults do: bert_tf's AdamW is google-research/bert's (no bias correction, eps 1e-6),
sentence-transformers' is torch's (bias correction, eps 1e-8). Each side draws its own batch order
from the seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bert_tf.atomic import write_json_atomic  # noqa: E402


def write_splits(folder: str) -> dict:
    from bert_tf.data import datasets
    os.makedirs(folder, exist_ok=True)
    return {split: datasets.write_split("wiki_sections", split, os.path.join(folder, f"{split}.csv"))
            for split in datasets.SPLITS}


def read_pairs(path: str):
    from bert_tf.data.text_pairs import read_pairs as read
    pairs = read(path)
    return pairs.anchors, pairs.positives


def scores_of(vectors_for, path: str) -> dict:
    """Retrieval scores of one split, given a function texts → vectors."""
    from bert_tf.tasks.embedding import retrieval_metrics
    anchors, positives = read_pairs(path)
    vectors = vectors_for(list(anchors) + list(positives))
    return retrieval_metrics(vectors, len(anchors), positives)


# ------------------------------------------------------------------------------------- bert_tf
def run_bert_tf(init: str, paths: dict, args, out: str) -> dict:
    from bert_tf.tasks import FinetuneOptions, evaluate, finetune
    started = time.perf_counter()
    result = finetune(FinetuneOptions(
        task="embed", init=init, train=paths["train"], eval=paths["dev"], out=out,
        max_length=args.max_length, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup=args.warmup, seed=args.seed,
        xla=args.xla, progress=False, task_settings={"pooling": "mean"}))
    seconds = time.perf_counter() - started
    test = evaluate(out, paths["test"])
    return {"dev": result.metrics, "test": test, "best_step": result.best_step,
            "steps": result.steps, "seconds": seconds}


# ---------------------------------------------------------------------- sentence-transformers
def run_sentence_transformers(init: str, paths: dict, args) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model = SentenceTransformer(init, device="cpu")
    model.max_seq_length = args.max_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    anchors, positives = read_pairs(paths["train"])
    n = len(anchors)
    per_epoch = math.ceil(n / args.batch_size)
    total = max(1, math.ceil(per_epoch * args.epochs))
    warmup = int(args.warmup * total)
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW([
        {"params": [p for name, p in named if not any(k in name for k in no_decay)],
         "weight_decay": 0.01},
        {"params": [p for name, p in named if any(k in name for k in no_decay)],
         "weight_decay": 0.0}], lr=args.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / max(1, warmup) if step < warmup
        else max(0.0, (total - step) / max(1, total - warmup)))
    generator = np.random.default_rng(args.seed)
    order = np.concatenate([generator.permutation(n)
                            for _ in range(math.ceil(total * args.batch_size / n) + 1)])

    def encode(texts):
        model.eval()
        return model.encode(texts, batch_size=64, convert_to_numpy=True)

    best = best_state = best_step = None
    for step in range(total):
        model.train()
        index = order[step * args.batch_size:(step + 1) * args.batch_size]
        features = [model.tokenize([texts[i] for i in index]) for texts in (anchors, positives)]
        embeddings = [model(f)["sentence_embedding"] for f in features]
        loss = loss_fn.compute_loss_from_embeddings(embeddings, None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % per_epoch == 0 or step + 1 == total:
            dev = scores_of(encode, paths["dev"])
            print(f"[sentence-transformers] step {step + 1}/{total} loss {loss.item():.4f} dev "
                  f"recall@1 {dev['recall_at_1']:.4f}", file=sys.stderr, flush=True)
            if best is None or dev["recall_at_1"] > best["recall_at_1"]:
                best, best_step = dev, step + 1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    return {"dev": best, "test": scores_of(encode, paths["test"]), "best_step": best_step,
            "steps": total, "seconds": seconds}


# ------------------------------------------------------------------------------------- main
def zero_shot(init: str, paths: dict) -> dict:
    from sentence_transformers import SentenceTransformer

    from bert_tf.models import BertSentenceEncoder
    ours = BertSentenceEncoder.from_pretrained(init)
    theirs = SentenceTransformer(init, device="cpu")
    return {"bert_tf": scores_of(lambda t: ours.encode(t), paths["test"]),
            "sentence_transformers": scores_of(
                lambda t: theirs.encode(t, batch_size=64, convert_to_numpy=True), paths["test"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--xla", action="store_true", help="bert_tf: XLA-compile the steps")
    parser.add_argument("--out", default="runs/compare_embed")
    args = parser.parse_args(argv)
    from bert_tf.data.fetch import minilm_dir
    init = minilm_dir()
    paths = write_splits(os.path.join(args.out, "data"))
    summary_path = os.path.join(args.out, "results.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    if "zero_shot" not in summary:
        summary["zero_shot"] = zero_shot(init, paths)
        write_json_atomic(summary_path, summary)
    recipe = {k: getattr(args, k) for k in ("epochs", "batch_size", "learning_rate", "warmup",
                                            "max_length")}
    runs = summary.setdefault("runs", {})
    for seed in [int(s) for s in args.seeds.split(",")]:
        key = json.dumps({**recipe, "seed": seed}, sort_keys=True)
        if key in runs:   # a finished seed of the same recipe
            continue
        args.seed = seed
        bert = run_bert_tf(init, paths, args, os.path.join(args.out, f"bert_tf_seed{seed}"))
        st = run_sentence_transformers(init, paths, args)
        runs[key] = {"seed": seed, "bert_tf": bert, "sentence_transformers": st}
        write_json_atomic(summary_path, summary)
    print_table(summary, recipe)
    return 0


def print_table(summary: dict, recipe: dict) -> None:
    zero = summary["zero_shot"]
    print(f"test split: {zero['bert_tf']['queries']} queries x {zero['bert_tf']['candidates']} "
          f"candidates; recipe {recipe}")
    print("| model | seed | recall@1 | recall@10 | MRR@10 | best step | train s |")
    print("|---|---|---|---|---|---|---|")
    for side, scores in zero.items():
        print(f"| zero-shot MiniLM ({side}) | - | {100 * scores['recall_at_1']:.2f} | "
              f"{100 * scores['recall_at_10']:.2f} | {100 * scores['mrr_at_10']:.2f} | - | - |")
    gaps = []
    for key, run in sorted(summary["runs"].items()):
        if {k: v for k, v in json.loads(key).items() if k != "seed"} != recipe:
            continue
        for side in ("bert_tf", "sentence_transformers"):
            r = run[side]
            t = r["test"]
            print(f"| fine-tuned ({side}) | {run['seed']} | {100 * t['recall_at_1']:.2f} | "
                  f"{100 * t['recall_at_10']:.2f} | {100 * t['mrr_at_10']:.2f} | "
                  f"{r['best_step']}/{r['steps']} | {r['seconds']:.0f} |")
        gaps.append(run["bert_tf"]["test"]["recall_at_1"]
                    - run["sentence_transformers"]["test"]["recall_at_1"])
    if gaps:
        gaps = 100 * np.asarray(gaps)
        se = gaps.std(ddof=1) / math.sqrt(len(gaps)) if len(gaps) > 1 else float("nan")
        print(f"recall@1 gap bert_tf - sentence-transformers over {len(gaps)} seed(s): "
              f"mean {gaps.mean():+.2f} points (standard error {se:.2f})")


if __name__ == "__main__":
    sys.exit(main())
