"""P7 fine-tuning time to accuracy: bert_tf's `finetune` with its defaults vs a PyTorch /
transformers loop the way its users run it, on the same data, recipe and starting weights.

Each task (Rotten Tomatoes sentiment; WNUT 2017 NER) writes its splits once, then the two sides
run one after the other, `sizes.p7_repeats` times, alternating which goes first:
- bert_tf finetune: `bert_tf.tasks.finetune` with FinetuneOptions' defaults except the recipe's
  epochs / max length (what `bert-tf finetune` runs), then `evaluate` on the test split;
- torch dynamic padding: `torch_finetune.finetune_torch` — same optimizer (google's AdamW),
  schedule, clipping, batch size and dev-best epoch, every batch cut to its longest row.
The timed value is the wall time of the whole fine-tuning call (set-up, tracing, dev scoring
included) divided by the epochs: seconds per epoch, lower is better. Each row carries its test
metric (accuracy; entity F1) and its difference from the other side's, in points.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.timing import BenchmarkError

TASKS = {"sentiment": ("classify", "accuracy"), "ner": ("ner", "f1")}
OURS, PEER = "bert_tf finetune", "torch dynamic padding"


def write_splits(task: str, folder: str, train_limit: int | None, seed: int = 0,
                 eval_limit: int | None = None) -> dict:
    """Rotten Tomatoes (CSV) or WNUT 2017 (CoNLL) train/dev/test files -> {split: (path, n)};
    `train_limit` keeps that many training examples by a seeded permutation, `eval_limit` the
    first dev/test examples. SPLITS lists train first."""
    from bert_tf.data import classification, conll, datasets
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for split in datasets.SPLITS:
        if task == "sentiment":
            rows = [(text, datasets.ROTTEN_TOMATOES_LABELS[label])
                    for text, label in datasets.rotten_tomatoes(split)]
        else:
            rows = datasets.wnut_ner(split)
        if split == "train":
            if train_limit is not None and train_limit < len(rows):
                keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:train_limit])
                rows = [rows[i] for i in keep]
            train_tags = {tag for _, tags in rows for tag in tags} if task == "ner" else None
        else:
            if train_tags is not None and train_limit is not None:
                # a cut training split may lack rare tags: the labels come from it, so dev and
                # test keep the sentences it can label
                rows = [(words, tags) for words, tags in rows if set(tags) <= train_tags]
            if eval_limit is not None:
                rows = rows[:eval_limit]
        path = os.path.join(folder, f"{split}.{'csv' if task == 'sentiment' else 'conll'}")
        if task == "sentiment":
            classification.write_classification(path, rows)
        else:
            conll.write_conll(path, rows)
        paths[split] = (path, len(rows))
    return paths


def run_bert_tf(options, test: str) -> dict:
    """`bert_tf.tasks.finetune(options)`, timed, then its output scored on `test`:
    {dev, test, best_step, steps, seconds (the whole finetune call)}."""
    from bert_tf.tasks import evaluate, finetune
    started = time.perf_counter()
    result = finetune(options)
    seconds = time.perf_counter() - started
    if result.interrupted:
        raise BenchmarkError(f"bert_tf side stopped by SIGTERM at step {result.steps}; its "
                             f"checkpoint is in {options.out}: rerun the same command to resume")
    return {"dev": result.metrics, "test": evaluate(options.out, test),
            "best_step": result.best_step, "steps": result.steps, "seconds": seconds}


def run_torch(options, paths: dict, labels: list, log) -> dict:
    """The PyTorch loop with the recipe of `options` (FinetuneOptions), each batch cut to its
    longest row."""
    from bert_tf.benchmarks.torch_finetune import finetune_torch
    return finetune_torch(options.task, options.init, paths, labels, dynamic=True, log=log,
                          max_length=options.max_length, epochs=options.epochs,
                          batch_size=options.batch_size, learning_rate=options.learning_rate,
                          warmup=options.warmup, seed=options.seed)


def run(sizes, init: str, work_dir: str, log) -> list:
    """`init`: a transformers-layout checkpoint both sides read (config.json, model.safetensors,
    vocab.txt): the MiniLM-L6 weights at full size."""
    from bert_tf.data import datasets
    from bert_tf.tasks import FinetuneOptions
    rows = []
    for task, recipe in sizes.p7_tasks.items():
        recipe = dict(recipe)
        train_limit, eval_limit = recipe.pop("train_limit", None), recipe.pop("eval_limit", None)
        folder = os.path.join(work_dir, f"p7-{task}")
        paths = {k: p for k, (p, _) in write_splits(task, os.path.join(folder, "data"),
                                                     train_limit, eval_limit=eval_limit).items()}
        labels = datasets.label_names("rotten_tomatoes" if task == "sentiment" else "wnut_ner")
        # `bert-tf finetune`'s defaults with the recipe's changes: both sides read this one
        options = FinetuneOptions(TASKS[task][0], init, paths["train"], folder,
                                  eval=paths["dev"], progress=False, **recipe)
        epochs = options.epochs
        metric = TASKS[task][1]
        runs = {OURS: [], PEER: []}
        for repeat in range(sizes.p7_repeats):
            order = (OURS, PEER) if repeat % 2 == 0 else (PEER, OURS)
            for side in order:
                if side == OURS:
                    got = run_bert_tf(dataclasses.replace(
                        options, out=os.path.join(folder, f"bert_tf-{repeat}")), paths["test"])
                else:
                    got = run_torch(options, paths, labels, log)
                runs[side].append(got)
                log(f"P7 {task} {side}: {got['seconds']:.1f} s for {epochs:g} epochs, test "
                    f"{metric} {got['test'][metric]:.4f}")
        means = {side: float(np.mean([r["test"][metric] for r in got]))
                 for side, got in runs.items()}
        case = f"{task}, {epochs:g} epoch{'' if epochs == 1 else 's'}"
        for side, got in runs.items():
            gap = 100 * (means[side] - means[PEER if side == OURS else OURS])
            rows.append(Row("P7", case, side, "ours" if side == OURS else "peer", "s/epoch",
                            [r["seconds"] / epochs for r in got], higher_is_better=False,
                            extra={metric: means[side], "steps": got[0]["steps"],
                                   f"{metric}_vs_other_points": gap}))
    return rows
