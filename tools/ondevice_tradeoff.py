"""On-device cost of a fine-tuned classifier and its distilled students: each model converted to
TFLite (float32 / dynamic int8 / full int8, fixed length or with length signatures), run at batch 1
on the real test texts through `TFLiteTaskRunner` (the tokenizer inside, `measure` then the
shortest signature that fits), against the teacher's fixed-128 float32 model.

    python tools/ondevice_tradeoff.py --teacher T --student 3L=S3 --student 2L=S2 --data DIR \
        --out OUT [--lengths 16,32,64] [--latency-texts 300]

Reported per variant: test accuracy of the TFLite answers (the whole split), its delta to the
teacher's fixed-128 float32 TFLite, mean batch-1 latency over the first --latency-texts test texts
(variants timed in turn, text by text, so a drift of the machine's speed hits all alike), the
speedup over the baseline and the file size.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--data", required=True, help="folder with the test.* split")
    parser.add_argument("--out", required=True)
    parser.add_argument("--lengths", default="16,32,64")
    parser.add_argument("--latency-texts", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8", action="store_true", help="also full-int8 variants")
    args = parser.parse_args(argv)

    import numpy as np
    from bert_tf.export.tflite import convert_tflite
    from bert_tf.export.tflite_runner import TFLiteTaskRunner
    from bert_tf.export.tflite_tool import task_texts
    from bert_tf.tasks.model_dir import FinetunedModel

    os.makedirs(args.out, exist_ok=True)
    lengths = tuple(int(x) for x in args.lengths.split(","))
    models = {"teacher": args.teacher}
    models.update(dict(s.split("=", 1) for s in args.student))
    test = sorted(glob.glob(os.path.join(args.data, "test.*")))[0]
    teacher = FinetunedModel.load(args.teacher)
    records = teacher.task.read(test)
    texts, gold = list(records.texts), np.asarray(records.labels)
    calibration, _ = task_texts("rotten_tomatoes", "dev", limit=300)

    variants = {"teacher fp32 [1,128]": ("teacher", "none", 128, ())}
    for name in models:
        full = FinetunedModel.load(models[name]).settings["max_length"]
        variants[f"{name} fp32 lengths"] = (name, "none", full, lengths)
        variants[f"{name} dynamic lengths"] = (name, "dynamic", full, lengths)
        if args.int8:
            variants[f"{name} int8 lengths"] = (name, "int8", full, lengths)
    variants["teacher fp32 [1,64]"] = ("teacher", "none", 64, ())

    runners, report = {}, {}
    for key, (name, quantize, length, extra) in variants.items():
        path = os.path.join(args.out, key.replace(" ", "_").replace("[", "").replace("]", "")
                            .replace(",", "x") + ".tflite")
        if not os.path.exists(path):
            convert_tflite(models[name], path, quantize=quantize, sequence_length=length,
                           lengths=extra, representative_data=calibration
                           if quantize == "int8" else None)
        loaded = FinetunedModel.load(models[name])
        runner = TFLiteTaskRunner(path, loaded.task)
        predicted = runner({"text": texts})["label_ids"]
        report[key] = {"accuracy": float(np.mean(predicted == gold)),
                       "mib": round(os.path.getsize(path) / 2 ** 20, 2),
                       "lengths_used": dict(runner.lengths_used)}
        runners[key] = runner
        print(key, report[key], flush=True)

    sample = texts[:args.latency_texts]
    seconds = {key: 0.0 for key in runners}
    for text in sample:
        for key, runner in runners.items():
            start = time.perf_counter()
            runner({"text": [text]})
            seconds[key] += time.perf_counter() - start
    base_key = "teacher fp32 [1,128]"
    base_ms = 1000 * seconds[base_key] / len(sample)
    print(f"\n{'variant':<26} {'accuracy':>9} {'delta':>7} {'ms':>7} {'speedup':>8} {'MiB':>6}")
    for key in runners:
        ms = 1000 * seconds[key] / len(sample)
        report[key].update(ms=round(ms, 3), speedup=round(base_ms / ms, 2),
                           delta_points=round(100 * (report[key]["accuracy"]
                                                     - report[base_key]["accuracy"]), 2))
        print(f"{key:<26} {report[key]['accuracy']:>9.4f} {report[key]['delta_points']:>+7.2f} "
              f"{ms:>7.2f} {base_ms / ms:>7.2f}x {report[key]['mib']:>6.1f}")
    with open(os.path.join(args.out, "ondevice.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
