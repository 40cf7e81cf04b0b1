"""Fine-tunes the real MiniLM-L6 weights with bert_tf and with Hugging Face transformers (PyTorch),
same recipe, same split, and prints both test metrics and wall times side by side.

    python tools/compare_finetune.py --task sentiment --max-length 64 --epochs 1 --train-limit 4000
    python tools/compare_finetune.py --task ner --max-length 64 --epochs 8 --learning-rate 5e-5
    python tools/compare_finetune.py --task sentiment ... --seeds 0,1,2 --out runs/sent
    python tools/compare_finetune.py --task ner ... --seeds 0,1,2 --paired --xla --out runs/ner
    python tools/compare_finetune.py --task ner ... --seeds 3 --paired --xla --dropout-seed 1 ...
    python tools/compare_finetune.py --task sentiment --max-length 128 --epochs 2 \
        --torch-dynamic-padding      # P7's comparison: PyTorch cuts each batch to its longest row

The NER example's recipe (5e-5 over 8 epochs) is the one that trains without collapsing to
all-"O" on the small tweet set; its results over paired seeds, and the collapsing recipe it
replaced, are in docs/results.md.

One test split of ~1,300 examples gives an accuracy with a binomial standard error of ~1.1 points,
so a 0.5-point bar needs several seeds: `--seeds` runs each into OUT/seed_N (a finished seed of
the same recipe is reused, so an interrupted sweep resumes) and prints both sides' means and the
mean gap with its standard error.

Data: `bert_tf.data.datasets` (Rotten Tomatoes / WNUT tweets from pinned packages, hash split
80/10/10); `--train-limit N` keeps N training examples picked by a seeded permutation (both sides
get the same file). Recipe on both sides: AdamW as google-research/bert has it (no bias correction,
eps 1e-6, weight decay 0.01 except LayerNorm and bias), linear warmup over `--warmup` of the steps
then linear decay to 0 (lr 0 at step 0), global-norm clipping 1.0, the checkpoint's dropout (0.1),
batches drawn by a seeded shuffle, the last partial batch wrapped into the next epoch (the steps
count is ceil(epochs * n / batch)), `--seed` for head initialization, dropout and data order
(each framework's own RNG: same policy, different streams; with `--paired`, PyTorch instead starts
from bert_tf's initial head and takes bert_tf's batches in bert_tf's order, so only the dropout
masks differ and each seed's gap is a paired difference; `--dropout-seed D` then redraws only
the masks, on both sides, to see how much of a seed's result is dropout noise). The PyTorch loop
is `bert_tf.benchmarks.torch_finetune` (bench P7 runs it too); it pads every row to
`--max-length` unless `--torch-dynamic-padding` cuts each batch to its longest row. The dev split is
scored after every epoch and the best epoch's model is scored on the test split. NER: a word's label sits on its first
word-piece (-100 elsewhere); words cut off by `--max-length` are predicted "O"; entity F1 by
seqeval (conlleval rules) through `bert_tf.metrics` on both sides.

Outputs: OUT/bert_tf is bert_tf's model directory, OUT/torch the PyTorch side's best model saved
by transformers (config with id2label, model.safetensors, tokenizer files): the pair
`tools/compare_interchange.py` moves across.

Tokenization: bert_tf uses its in-graph tokenizer, PyTorch uses transformers' BertTokenizerFast on
the same vocab.txt (checked against the published reference ids first).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bert_tf.atomic import write_json_atomic  # noqa: E402
from bert_tf.benchmarks.p7_finetune import run_bert_tf as timed_finetune  # noqa: E402
from bert_tf.benchmarks.p7_finetune import write_splits  # noqa: E402
from bert_tf.benchmarks.timing import BenchmarkError  # noqa: E402
from bert_tf.benchmarks.torch_finetune import finetune_torch  # noqa: E402

TASKS = {"sentiment": "classify", "ner": "ner"}


# ------------------------------------------------------------------------------------- bert_tf
def run_bert_tf(task: str, init: str, paths: dict, args, out: str) -> dict:
    from bert_tf.tasks import FinetuneOptions
    options = FinetuneOptions(TASKS[task], init, paths["train"][0], out, eval=paths["dev"][0],
                              max_length=args.max_length, epochs=args.epochs,
                              batch_size=args.batch_size, learning_rate=args.learning_rate,
                              warmup=args.warmup, seed=args.seed, dropout_seed=args.dropout_seed,
                              strategy="one_device",
                              xla=args.xla, progress=args.progress, pack=not args.no_pack)
    try:
        return timed_finetune(options, paths["test"][0])
    except BenchmarkError as e:   # stopped by SIGTERM: say how to resume, no traceback
        raise SystemExit(str(e)) from None


# ------------------------------------------------------------------------------------- PyTorch
def check_one_window_per_sentence(init: str, path: str, label_names, max_length: int, n: int):
    """bert_tf cuts a sentence longer than one window into several (PyTorch's side truncates
    it): a paired run, which feeds both the same example indices, needs one window each."""
    from bert_tf.tasks.registry import make_task
    from bert_tf.text import BertTokenizer
    from bert_tf.text.vocabulary import read_vocabulary
    task = make_task("ner", BertTokenizer(read_vocabulary(os.path.join(init, "vocab.txt")),
                                          sequence_length=max_length), list(label_names))
    windows = len(task.encode(task.read(path), training=True))
    if windows != n:
        raise SystemExit(f"--paired: {path} has sentences longer than --max-length {max_length} "
                         f"({windows} bert_tf windows for {n} sentences); raise --max-length")


def bert_tf_start(task: str, init: str, label_names, seed: int, n: int, batch_size: int,
                  steps: int):
    """What `bert_tf.tasks.finetune` starts from for `seed`: the task head's initial weights
    (kernel [hidden, labels], bias [labels]) and the training batches' example indices
    ([steps, batch_size], epochs reshuffled, the last partial batch wrapped into the next epoch).
    Built the way finetune builds them (its seeding, its strategy, `task.build_model`, its
    `train_dataset` pipeline), so that `--paired` runs PyTorch from the same start."""
    import keras
    from bert_tf.tasks.base import TaskFeatures, train_dataset
    from bert_tf.tasks.registry import make_task
    from bert_tf.text import BertTokenizer
    from bert_tf.text.vocabulary import read_vocabulary
    from bert_tf.training import create_strategy
    from bert_tf.models.pretrained import load_encoder

    bert_tf_task = make_task(TASKS[task], BertTokenizer(read_vocabulary(
        os.path.join(init, "vocab.txt")), sequence_length=8), list(label_names))
    keras.utils.set_random_seed(seed)
    with create_strategy("one_device").scope():
        model = bert_tf_task.build_model(load_encoder(init))
    head = model.get_layer("classifier")
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    index = np.arange(n, dtype=np.int32)[:, None]
    batches = train_dataset(TaskFeatures({"input_ids": index}, {"labels": index}), batch_size, seed)
    order = np.stack([inputs["input_ids"].numpy()[:, 0] for inputs, _ in batches.take(steps)])
    return kernel, bias, order


def run_torch(task: str, init: str, paths: dict, args, label_names,
              save_to: str | None = None) -> dict:
    start = None
    if args.paired:
        n = paths["train"][1]
        if task != "sentiment":
            check_one_window_per_sentence(init, paths["train"][0], label_names, args.max_length, n)
        total = max(1, math.ceil(math.ceil(n / args.batch_size) * args.epochs))
        start = bert_tf_start(task, init, label_names, args.seed, n, args.batch_size, total)
    return finetune_torch(TASKS[task], init, {k: p for k, (p, _) in paths.items()}, label_names,
                          max_length=args.max_length, epochs=args.epochs,
                          batch_size=args.batch_size, learning_rate=args.learning_rate,
                          warmup=args.warmup, seed=args.seed, dynamic=args.torch_dynamic_padding,
                          start=start, dropout_seed=args.dropout_seed, save_to=save_to)


# ------------------------------------------------------------------------------------- main
SEED_FREE = ("seed", "seeds", "out", "progress")   # recipe keys that may differ between seeds
# What results.json files written before a key existed ran with:
RECIPE_DEFAULTS = {"xla": False, "paired": False, "dropout_seed": None,
                   "torch_dynamic_padding": False}


def recipe_of(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in SEED_FREE}


def run_seed(args, init: str, out: str, label_names) -> dict:
    """Both sides for `args.seed` into `out`; returns {side: results}. A finished run of the same
    recipe in `out` (its results.json) is read back instead of trained again."""
    done = os.path.join(out, "results.json")
    if os.path.exists(done):
        with open(done, encoding="utf-8") as f:
            saved = json.load(f)
        recipe = {**RECIPE_DEFAULTS, **saved["recipe"]}
        if {k: v for k, v in recipe.items() if k not in SEED_FREE} == recipe_of(args) \
                and saved["recipe"]["seed"] == args.seed:
            print(f"seed {args.seed}: reusing {done}", flush=True)
            return saved["results"]
        raise SystemExit(f"{done} holds a different recipe: {saved['recipe']}; pick another --out")
    os.makedirs(out, exist_ok=True)
    paths = write_splits(args.task, os.path.join(out, "data"), args.train_limit, args.seed)
    print(f"{args.task} seed {args.seed}: train {paths['train'][1]}, dev {paths['dev'][1]}, test "
          f"{paths['test'][1]} examples; outputs in {out}", flush=True)
    results = {}
    sides = args.sides.split(",")
    if "bert_tf" in sides:
        results["bert_tf"] = run_bert_tf(args.task, init, paths, args, os.path.join(out, "bert_tf"))
    if "torch" in sides:
        results["torch"] = run_torch(args.task, init, paths, args, label_names,
                                     save_to=os.path.join(out, "torch"))
    write_json_atomic(done, {"recipe": vars(args), "results": results}, indent=1, default=float)
    return results


def print_table(runs: dict, metric: str) -> None:
    """runs: seed -> {side: results}. One row per seed and side, then each side's mean ± standard
    deviation over the seeds and the mean bert_tf - torch gap."""
    print(f"{'seed':>4} {'side':8} {'test ' + metric:>14} {'dev ' + metric:>13} {'best step':>10} "
          f"{'steps':>6} {'wall s':>8}")
    for seed, results in runs.items():
        for side, r in results.items():
            print(f"{seed:>4} {side:8} {100 * r['test'][metric]:14.2f} "
                  f"{100 * r['dev'][metric]:13.2f} {r['best_step']:>10} {r['steps']:>6} "
                  f"{r['seconds']:8.1f}")
    sides = [side for side in ("bert_tf", "torch") if all(side in r for r in runs.values())]
    for split in ("test", "dev"):
        means = {}
        for side in sides:
            values = np.array([100 * r[side][split][metric] for r in runs.values()])
            means[side] = values.mean()
            spread = f" ± {values.std(ddof=1):.2f} (sd)" if len(values) > 1 else ""
            print(f"{side:8} {split} {metric}: mean {values.mean():.2f}{spread} over {len(values)} "
                  f"seed(s)")
        if len(means) == 2:
            gaps = np.array([100 * (r["bert_tf"][split][metric] - r["torch"][split][metric])
                             for r in runs.values()])
            spread = (f", standard error {gaps.std(ddof=1) / np.sqrt(len(gaps)):.2f}"
                      if len(gaps) > 1 else "")
            print(f"bert_tf - torch: {gaps.mean():+.2f} points of {split} {metric} (mean over "
                  f"{len(gaps)} seed(s){spread})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds (e.g. 0,1,2): one run per seed in OUT/seed_N "
                             "(finished ones are reused), then means over the seeds")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="use this many training examples (seeded pick), default all")
    parser.add_argument("--xla", action="store_true",
                        help="bert_tf side: XLA-compile the training step and the evaluations")
    parser.add_argument("--paired", action="store_true",
                        help="PyTorch starts from bert_tf's initial head weights and draws the "
                             "same batches in the same order, so only the dropout masks differ "
                             "between the sides (a paired comparison: less noise per seed)")
    parser.add_argument("--dropout-seed", type=int, default=None,
                        help="both sides: reseed dropout alone (bert_tf's `--dropout-seed`, "
                             "torch.manual_seed before the first step), keeping each seed's head "
                             "and order; with --paired, reruns a seed's pair under other masks")
    parser.add_argument("--torch-dynamic-padding", action="store_true",
                        help="PyTorch side: cut every batch to its longest row (what "
                             "DataCollatorWithPadding gives transformers users) instead of "
                             "padding every row to --max-length")
    parser.add_argument("--no-pack", action="store_true",
                        help="bert_tf trains on the padded batch (finetune --no-pack), not on "
                             "each batch's real tokens")
    parser.add_argument("--sides", default="bert_tf,torch", help="which runs (comma-separated)")
    parser.add_argument("--out", default=None, help="keep outputs here (default: a temp dir)")
    parser.add_argument("--progress", action="store_true", help="bert_tf progress bar")
    args = parser.parse_args(argv)
    try:
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds has a repeated seed: {args.seeds!r}")

    from bert_tf.data import datasets
    from bert_tf.data.fetch import minilm_dir
    init = minilm_dir()
    out = args.out or tempfile.mkdtemp(prefix="compare-finetune-")
    label_names = datasets.label_names("rotten_tomatoes" if args.task == "sentiment" else "wnut_ner")
    runs = {}
    for seed in seeds:
        args.seed = seed
        runs[seed] = run_seed(args, init, os.path.join(out, f"seed_{seed}") if args.seeds else out,
                              label_names)
    metric = "accuracy" if args.task == "sentiment" else "f1"
    print(f"\nrecipe: {recipe_of(args)}")
    print_table(runs, metric)
    return 0


if __name__ == "__main__":
    sys.exit(main())
