"""The distillation trade-off on real data: students of K layers distilled from a fine-tuned
teacher (`bert-tf distill --student-layers K`) against the control — the same K layers of the
pre-trained encoder fine-tuned on the labels alone — test metric over several seeds, parameters,
and (with --speed) raw-text SavedModel throughput and TFLite dynamic-int8 batch-1 latency.

    python tools/distill_tradeoff.py --teacher T --init PRETRAINED --data DIR --out OUT \
        [--layers 3,2] [--layer-map 0,2,5 ...] [--seeds 0,1,2] [--epochs 4] [--speed]

DIR holds train/dev/test files of the teacher's task (e.g. `bert-tf dataset rotten_tomatoes`).
Every run is an ordinary output directory under OUT; rerunning skips the finished ones.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import sys
import time


def split_file(data: str, split: str) -> str:
    found = sorted(glob.glob(os.path.join(data, f"{split}.*")))
    if not found:
        sys.exit(f"{data}: no {split}.* file")
    return found[0]


def student_key(layers) -> str:
    """A student's name in run names: "3" for a count, "m0-2-5" for the teacher's layers."""
    return str(layers) if isinstance(layers, int) else "m" + "-".join(map(str, layers))


def students(counts: str | None, maps: list) -> list:
    """The students to run: layer counts (`--layers 3,2`), then the teacher's layers by index
    (each `--layer-map 0,2,5` one student, parsed as `bert-tf distill --student-layers`)."""
    if counts is None:
        counts = "" if maps else "3,2"
    try:
        found = [int(n) for n in counts.split(",") if n.strip()]
    except ValueError:
        sys.exit(f"--layers {counts!r}: comma-separated layer counts expected")
    return found + maps


def truncated_init(init: str, layers, out: str) -> str:
    """The pre-trained encoder cut to `layers` (a count, or the layers by index), in HF layout
    with its vocab."""
    from bert_tf.models.pretrained import load_encoder
    from bert_tf.models.student import truncated_encoder
    from bert_tf.tasks.finetuning import find_vocab
    folder = os.path.join(out, f"init_{student_key(layers)}")
    if not os.path.exists(os.path.join(folder, "vocab.txt")):
        truncated_encoder(load_encoder(init), layers).save_pretrained(folder)
        shutil.copy(find_vocab(init, None), os.path.join(folder, "vocab.txt"))
    return folder


def parameters(directory: str) -> int:
    from bert_tf.tasks.model_dir import FinetunedModel
    return int(FinetunedModel.load(directory).model.count_params())


def speed(directory: str, texts: list, work: str) -> dict:
    """Raw-text SavedModel throughput (batch 32, texts/s) and TFLite dynamic-int8 batch-1
    latency (ms, mean over the texts) of one model directory."""
    import numpy as np
    import tensorflow as tf
    from bert_tf.export.saved_model import export_saved_model
    from bert_tf.export.tflite import convert_tflite, interpreter
    saved = os.path.join(work, "saved")
    version = export_saved_model(directory, saved) if not os.path.exists(saved) else \
        os.path.join(saved, sorted(os.listdir(saved))[-1])
    serve = tf.saved_model.load(version).signatures["serving_default"]
    batches = [tf.constant(texts[i:i + 32]) for i in range(0, len(texts), 32)]
    serve(text=batches[0])
    start = time.perf_counter()
    for batch in batches:
        serve(text=batch)
    throughput = len(texts) / (time.perf_counter() - start)
    lite_path = os.path.join(work, "dynamic.tflite")
    if not os.path.exists(lite_path):
        convert_tflite(directory, lite_path, quantize="dynamic")
    runner = interpreter(lite_path).get_signature_runner("serving_default")
    sample = texts[:200]
    runner(text=np.array([sample[0]]))
    start = time.perf_counter()
    for text in sample:
        runner(text=np.array([text]))
    latency = 1000 * (time.perf_counter() - start) / len(sample)
    return {"saved_model_texts_per_s": round(throughput, 1),
            "tflite_dynamic_ms": round(latency, 2),
            "tflite_dynamic_mb": round(os.path.getsize(lite_path) / 2 ** 20, 2)}


def main(argv=None) -> int:
    from bert_tf.commands.distill import _student_layers
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--init", required=True, help="the teacher's pre-trained encoder")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", default=None,
                        help="student layer counts, comma-separated (default 3,2 unless "
                             "--layer-map is given)")
    parser.add_argument("--layer-map", action="append", default=[], type=_student_layers,
                        help="a student of the teacher's layers by 0-based index, e.g. 0,2,5 "
                             "(repeat for more students); its control is those layers of --init")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--augment", type=int, default=0,
                        help="distill kinds (ner): label-wise token replacement versions of each "
                             "training sentence (`bert-tf distill --augment`)")
    parser.add_argument("--augment-rate", type=float, default=0.3)
    parser.add_argument("--unlabeled", default=None,
                        help="more texts in the teacher's format that it labels for its students "
                             "(`bert-tf distill --unlabeled`)")
    parser.add_argument("--kinds", default="distill,control",
                        help="distill (from the teacher's layers), distill_init (from the cut "
                             "pre-trained encoder, with the teacher), control (that encoder, "
                             "labels only)")
    parser.add_argument("--speed", action="store_true")
    args = parser.parse_args(argv)
    chosen = students(args.layers, args.layer_map)

    import logging
    from bert_tf.tasks import FinetuneOptions, finetune
    from bert_tf.tasks.finetuning import evaluate
    from bert_tf.tasks.model_dir import FinetunedModel, ModelDirError
    logging.basicConfig(level=logging.WARNING)
    try:
        teacher = FinetunedModel.load(args.teacher)
    except ModelDirError as error:
        sys.exit(f"--teacher: {error}")
    train, dev, test = (split_file(args.data, s) for s in ("train", "dev", "test"))
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}

    def save():
        with open(results_path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(results_path + ".tmp", results_path)

    metric = teacher.task.metric
    if "teacher" not in results:
        results["teacher"] = {"test": evaluate(args.teacher, test)[metric],
                              "parameters": parameters(args.teacher),
                              "layers": teacher.model.encoder.config.num_hidden_layers}
        save()
    common = dict(train=train, eval=dev, max_length=teacher.settings["max_length"],
                  lowercase=teacher.settings["lowercase"], epochs=args.epochs,
                  learning_rate=args.learning_rate, strategy="one_device", progress=False)
    for layers in chosen:
        init = truncated_init(args.init, layers, args.out)
        key = student_key(layers)
        for kind in args.kinds.split(","):
            for seed in map(int, args.seeds.split(",")):
                name = f"{kind}_{key}_s{seed}"
                if name in results:
                    continue
                out = os.path.join(args.out, name)
                if kind == "control":
                    options = FinetuneOptions(task=teacher.task_type, init=init, out=out,
                                              seed=seed, task_settings=teacher.task.settings(),
                                              **common)
                else:
                    options = FinetuneOptions(
                        task=None, init=init if kind == "distill_init" else None, out=out,
                        seed=seed, teacher=args.teacher,
                        student_layers=layers if kind == "distill" else None,
                        temperature=args.temperature, alpha=args.alpha, augment=args.augment,
                        augment_rate=args.augment_rate, unlabeled=args.unlabeled, **common)
                started = time.perf_counter()
                result = finetune(options)
                results[name] = {"kind": kind, "seed": seed,
                                 "layers": layers if isinstance(layers, int) else list(layers),
                                 "dev": result.metrics.get(metric),
                                 "test": evaluate(out, test)[metric],
                                 "seconds": round(time.perf_counter() - started, 1)}
                print(name, results[name], flush=True)
                save()
    if args.speed:
        texts = list(teacher.task.read(test).texts)
        runs = {"teacher": args.teacher}
        runs.update({f"{k}_{n}": os.path.join(args.out, f"{k}_{n}_s0")
                     for k in args.kinds.split(",") for n in map(student_key, chosen)})
        for name, directory in runs.items():
            key = f"speed_{name}"
            if key not in results and os.path.isdir(directory):
                work = os.path.join(args.out, "speed", name)
                os.makedirs(work, exist_ok=True)
                results[key] = speed(directory, texts, work)
                print(key, results[key], flush=True)
                save()

    # The table: mean ± std over seeds.
    base = results["teacher"]["test"]
    print(f"\n{'model':<18} {'test ' + metric:>14} {'vs teacher':>11} {'params':>10}")
    print(f"{'teacher (' + str(results['teacher']['layers']) + 'L)':<18} {base:>14.4f} "
          f"{'':>11} {results['teacher']['parameters']:>10,}")
    for layers in chosen:
        key = student_key(layers)
        label = f"{layers}L" if isinstance(layers, int) else "L" + ",".join(map(str, layers))
        for kind in args.kinds.split(","):
            scores = [v["test"] for k, v in results.items()
                      if k.startswith(f"{kind}_{key}_s") and v.get("kind") == kind]
            if not scores:
                continue
            mean = statistics.mean(scores)
            std = statistics.stdev(scores) if len(scores) > 1 else 0.0
            print(f"{kind + ' ' + label:<18} {mean:>8.4f}±{std:.4f} "
                  f"{100 * (mean - base):>+10.2f} {'':>10}  ({len(scores)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
