"""Sentence-embedding fine-tuning, bert_tf vs sentence-transformers, on real retrieval pairs.

    python tools/compare_embed.py --seeds 0,1,2 --epochs 1 --out runs/cmp_embed
    python tools/compare_embed.py --seeds 0 --tflite --out runs/cmp_embed   # + TFLite rows

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
    if args.st_optimizer == "google":   # bert_tf's update rule, to separate it from the rest
        from bert_tf.benchmarks.torch_finetune import BertAdamW, lr_schedule
        optimizer = BertAdamW(named, lr_schedule(args.learning_rate, total, warmup))
        schedule = None
    else:
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
        if schedule is not None:
            schedule.step()
        model.zero_grad(set_to_none=True)
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


def tflite_rows(init: str, paths: dict, out: str) -> dict:
    """The zero-shot model as TFLite (tokenizer inside, 128 positions) in float32, dynamic-range
    int8 and full int8: each one's cosine to the Keras vectors (`verify_tflite`, Rotten Tomatoes
    test snippets) and the test recall@1 it keeps (its own vectors ranked)."""
    from bert_tf.export.tflite_runner import TFLiteTaskRunner
    from bert_tf.export.tflite_tool import convert_and_verify
    from bert_tf.tasks.model_dir import checkpoint_embedding_model
    loaded = checkpoint_embedding_model(init, sequence_length=128)
    # The Keras model cut to the same 128 positions: what the TFLite variants should keep.
    rows = {"keras, 128 positions": {
        "cosine_min": 1.0, "cosine_mean": 1.0, "file_bytes": 0, "latency_ms": 0.0,
        "test": scores_of(lambda t: loaded.model.encode(t, loaded.task.tokenizer), paths["test"])}}
    for quantize in ("none", "dynamic", "int8"):
        path = os.path.join(out, f"minilm_{quantize}.tflite")
        name = f"TFLite {'float32' if quantize == 'none' else quantize}"
        report = convert_and_verify(init, path, quantize=quantize, sequence_length=128,
                                    verify_examples=300,
                                    log=lambda _: None)
        runner = TFLiteTaskRunner(path, loaded.task)
        scores = scores_of(lambda t: runner({"text": t})["embeddings"], paths["test"])
        rows[name] = {"cosine_min": report["cosine_min"], "cosine_mean": report["cosine_mean"],
                          "file_bytes": report["file_bytes"], "latency_ms": report["latency_ms"],
                          "test": scores}
        print(f"{name}: cosine min {report['cosine_min']:.6f} mean "
              f"{report['cosine_mean']:.6f}, recall@1 {100 * scores['recall_at_1']:.2f}, "
              f"{report['file_bytes'] / 2**20:.1f} MiB, {report['latency_ms']:.1f} ms",
              file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--xla", action="store_true", help="bert_tf: XLA-compile the steps")
    parser.add_argument("--st-optimizer", choices=("torch", "google"), default="torch",
                        help="sentence-transformers side: torch's AdamW (its own, default) or "
                             "google-research/bert's (bert_tf's: no bias correction, eps 1e-6)")
    parser.add_argument("--out", default="runs/compare_embed")
    parser.add_argument("--tflite", action="store_true",
                        help="also: the zero-shot model as TFLite float32 / dynamic / int8, "
                             "cosine to Keras and the test recall@1 each keeps")
    args = parser.parse_args(argv)
    from bert_tf.data.fetch import minilm_dir
    init = minilm_dir()
    paths = write_splits(os.path.join(args.out, "data"))
    summary_path = os.path.join(args.out, "results.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    if "zero_shot" not in summary:
        summary["zero_shot"] = zero_shot(init, paths)
        write_json_atomic(summary_path, summary)
    if args.tflite and "tflite" not in summary:
        summary["tflite"] = tflite_rows(init, paths, args.out)
        write_json_atomic(summary_path, summary)
    recipe = {k: getattr(args, k) for k in ("epochs", "batch_size", "learning_rate", "warmup",
                                            "max_length")}
    runs = summary.setdefault("runs", {})
    peer = peer_name(args.st_optimizer)
    for seed in [int(s) for s in args.seeds.split(",")]:
        key = json.dumps({**recipe, "seed": seed}, sort_keys=True)
        run = runs.setdefault(key, {"seed": seed})   # a finished side of the same recipe is kept
        args.seed = seed
        if "bert_tf" not in run:
            run["bert_tf"] = run_bert_tf(init, paths, args,
                                         os.path.join(args.out, f"bert_tf_seed{seed}"))
            write_json_atomic(summary_path, summary)
        if peer not in run:
            run[peer] = run_sentence_transformers(init, paths, args)
            write_json_atomic(summary_path, summary)
    print_table(summary, recipe, peer)
    return 0


def peer_name(st_optimizer: str) -> str:
    return "sentence_transformers" if st_optimizer == "torch" else \
        "sentence_transformers, google AdamW"


def print_table(summary: dict, recipe: dict, peer: str) -> None:
    zero = summary["zero_shot"]
    print(f"test split: {zero['bert_tf']['queries']} queries x {zero['bert_tf']['candidates']} "
          f"candidates; recipe {recipe}")
    print("| model | seed | recall@1 | recall@10 | MRR@10 | best step | train s |")
    print("|---|---|---|---|---|---|---|")
    for side, scores in zero.items():
        print(f"| zero-shot MiniLM ({side}) | - | {100 * scores['recall_at_1']:.2f} | "
              f"{100 * scores['recall_at_10']:.2f} | {100 * scores['mrr_at_10']:.2f} | - | - |")
    for quantize, row in summary.get("tflite", {}).items():
        t = row["test"]
        print(f"| zero-shot MiniLM, {quantize} (cosine to Keras min "
              f"{row['cosine_min']:.5f}) | - | {100 * t['recall_at_1']:.2f} | "
              f"{100 * t['recall_at_10']:.2f} | {100 * t['mrr_at_10']:.2f} | - | - |")
    gaps = []
    for key, run in sorted(summary["runs"].items()):
        if {k: v for k, v in json.loads(key).items() if k != "seed"} != recipe:
            continue
        if peer not in run or "bert_tf" not in run:
            continue
        for side in ("bert_tf", peer):
            r = run[side]
            t = r["test"]
            print(f"| fine-tuned ({side}) | {run['seed']} | {100 * t['recall_at_1']:.2f} | "
                  f"{100 * t['recall_at_10']:.2f} | {100 * t['mrr_at_10']:.2f} | "
                  f"{r['best_step']}/{r['steps']} | {r['seconds']:.0f} |")
        gaps.append(run["bert_tf"]["test"]["recall_at_1"] - run[peer]["test"]["recall_at_1"])
    if gaps:
        gaps = 100 * np.asarray(gaps)
        se = gaps.std(ddof=1) / math.sqrt(len(gaps)) if len(gaps) > 1 else float("nan")
        print(f"recall@1 gap bert_tf - {peer} over {len(gaps)} seed(s): "
              f"mean {gaps.mean():+.2f} points (standard error {se:.2f})")


if __name__ == "__main__":
    sys.exit(main())
