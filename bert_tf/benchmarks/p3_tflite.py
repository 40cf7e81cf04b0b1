"""P3 TFLite: the sentiment classifier as shipped on a device, batch 1 on real sentence lengths.

Each quantization is converted twice by `bert_tf.export.convert_tflite` (the exporter users run):
  fixed     one [1, 128] signature: every sentence pays for 128 positions
  lengths   the same file with signatures for 16/32/64 positions too; each sentence runs at the
            shortest that holds it (what `TFLiteTaskRunner` does)
Quantizations:
  float32       no optimization
  float16       weights stored as float16 (dequantized to float32 at load on CPU)
  dynamic_int8  weights int8, activations quantized on the fly (Optimize.DEFAULT)
  full_int8     weights and activations int8, calibrated on real training snippets (every length
                signature sees them); the residual stream, LayerNorm and attention stay
                float (`bert_tf.export.tflite.INT8_FLOAT_OPS`)
The baseline of every row is float32 fixed-128, what a model converted without these options
costs. Sentences are tokenized beforehand (exact tokenizer, padded to 128) so the timing is the
model alone; accuracy is over the test split, its delta against float32 fixed-128.

With `models` (a fine-tuned teacher directory and its distilled student, `bert-tf bench
--p3-teacher T --p3-student S`), P3 also compares what we ship on a device against what a user
would convert without us: the student with length signatures, dynamic-range and int8, against the
teacher's float32 fixed-128 model, each on the Rotten Tomatoes test split with its own tokenizer.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.sentiment import sentences
from bert_tf.benchmarks.timing import BenchmarkError, alternate

VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")
QUANTIZE = {"float32": "none", "float16": "float16", "dynamic_int8": "dynamic",
            "full_int8": "int8"}
SEQUENCE_LENGTH = 128
LENGTHS = (16, 32, 64)
ID_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def padded_features(tokenizer, texts) -> tuple:
    """({name: int32 [n, 128]}, real lengths [n]) of the texts, packed by the exact tokenizer."""
    import tensorflow as tf
    features = tf.function(tokenizer)(tf.constant(list(texts)))
    arrays = {k: np.asarray(features[k], np.int32) for k in ID_NAMES}
    return arrays, arrays["attention_mask"].sum(axis=1)


def convert(classifier, tokenizer, variant: str, folder: str, lengths=(), calibration=()) -> str:
    """The classifier converted by `convert_tflite` → the .tflite path."""
    from bert_tf.export.tflite import convert_tflite
    if variant not in VARIANTS:
        raise BenchmarkError(f"unknown TFLite variant {variant!r}; choose from {VARIANTS}")
    if variant == "full_int8" and not calibration:
        raise BenchmarkError("full_int8 needs calibration sentences")
    path = os.path.join(folder, f"{variant}_{'lengths' if lengths else 'fixed'}.tflite")
    return convert_tflite(classifier, path, quantize=QUANTIZE[variant],
                          sequence_length=SEQUENCE_LENGTH, tokenizer=tokenizer,
                          labels=["rotten", "fresh"], with_tokenizer=False, lengths=lengths,
                          representative_data=list(calibration) if variant == "full_int8"
                          else None)


class BatchOneRunner:
    """call(i) → logits [2] of sentence i: its padded [1, 128] row on `serve_ids`, or with length
    signatures its first L positions on the shortest `serve_ids_L` that holds it."""

    def __init__(self, path: str, features: dict, lengths: np.ndarray, threads: int):
        from ai_edge_litert.interpreter import Interpreter
        from bert_tf.export.tflite_runner import length_runners, pick_length
        # (the features must be packed to the file's full length, the last of `available`)
        self.runners = length_runners(Interpreter(model_path=path, num_threads=threads))
        available = tuple(self.runners)
        # Each sentence's inputs, cut to the length it runs at, prepared once.
        self.inputs = []
        for i, needed in enumerate(lengths):
            n = pick_length(int(needed), available)
            self.inputs.append((n, {k: features[k][i:i + 1, :n] for k in ID_NAMES}))
        self.lengths_used = {}
        for n, _ in self.inputs:
            self.lengths_used[n] = self.lengths_used.get(n, 0) + 1

    def __call__(self, i: int):
        n, inputs = self.inputs[i]
        return self.runners[n](**inputs)["logits"][0]


def run_models(models: tuple, sizes, threads: int, log) -> list:
    """The shipped-model rows: (teacher dir, student dir) → student dynamic/int8 with length
    signatures vs the teacher's float32 fixed-128 (see the module docstring)."""
    from bert_tf.data.datasets import ROTTEN_TOMATOES_LABELS
    from bert_tf.export.tflite import convert_tflite
    from bert_tf.tasks.model_dir import FinetunedModel
    from bert_tf.text import BertTokenizer
    teacher_dir, student_dir = models
    calibration = sentences("train", sizes.p3_calibration_sentences)[0]
    texts, labels = sentences("test", sizes.p3_accuracy_sentences)
    latency = range(min(sizes.p3_latency_sentences, len(texts)))
    plans = {"teacher float32 fixed-128": (teacher_dir, "none", SEQUENCE_LENGTH, ()),
             "student dynamic_int8 lengths": (student_dir, "dynamic", None, LENGTHS),
             "student full_int8 lengths": (student_dir, "int8", None, LENGTHS)}
    runners, accuracy, sizes_mb = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="bert_tf_p3_") as folder:
        for key, (directory, quantize, length, lengths) in plans.items():
            loaded = FinetunedModel.load(directory)
            if loaded.task_type != "classify" or set(loaded.task.label_names) != {"fresh",
                                                                                  "rotten"}:
                raise BenchmarkError(f"{directory}: P3 compares Rotten Tomatoes sentiment "
                                     f"classifiers (fresh/rotten), got a {loaded.task_type} model "
                                     f"with labels {list(loaded.task.label_names)}")
            length = length or loaded.settings["max_length"]
            lengths = tuple(n for n in lengths if n < length)
            path = convert_tflite(loaded, os.path.join(folder, key.replace(" ", "_") + ".tflite"),
                                  quantize=quantize, sequence_length=length, lengths=lengths,
                                  with_tokenizer=False, representative_data=list(calibration)
                                  if quantize == "int8" else None)
            tokenizer = BertTokenizer(loaded.tokenizer.get_vocabulary(),
                                      lowercase=loaded.tokenizer.lowercase,
                                      sequence_length=length)
            features, real = padded_features(tokenizer, texts)
            runner = BatchOneRunner(path, features, real, threads)
            gold = np.array([loaded.task.label_names.index(ROTTEN_TOMATOES_LABELS[y])
                             for y in labels])
            predictions = np.array([int(np.argmax(runner(i))) for i in range(len(texts))])
            accuracy[key] = float(np.mean(predictions == gold))
            sizes_mb[key] = os.path.getsize(path) / 2 ** 20
            runners[key] = runner
            log(f"P3 {key}: {sizes_mb[key]:.1f} MiB, accuracy {accuracy[key]:.4f}; lengths "
                f"used {runner.lengths_used}")
        timings = alternate({k: ((lambda r=r: [r(i) for i in latency]), len(latency))
                             for k, r in runners.items()}, sizes.warmups, sizes.repeats)
    reference = "teacher float32 fixed-128"
    rows = []
    for key in plans:
        if key == reference:
            continue
        case = f"b1 shipped {key.split(' ', 1)[1].replace(' ', '/')}/teacher-fp32-128"
        rows.append(Row("P3", case, f"tflite {key}", "ours", "ms", timings[key].latencies_ms(),
                        higher_is_better=False, extra={
                            "accuracy": accuracy[key], "mib": sizes_mb[key],
                            "accuracy_delta_points": 100.0 * (accuracy[key] - accuracy[reference]),
                            "lengths_used": {str(n): c for n, c in
                                             sorted(runners[key].lengths_used.items())}}))
        rows.append(Row("P3", case, f"tflite {reference}", "peer", "ms",
                        timings[reference].latencies_ms(), higher_is_better=False,
                        extra={"accuracy": accuracy[reference], "mib": sizes_mb[reference]}))
    return rows


def run(model, sizes, threads: int, log) -> list:
    calibration = sentences("train", sizes.p3_calibration_sentences)[0]
    test_texts, test_labels = sentences("test", sizes.p3_accuracy_sentences)
    features, lengths = padded_features(model.tokenizer, test_texts)
    latency = range(min(sizes.p3_latency_sentences, len(test_texts)))

    runners, accuracy, sizes_mb = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="bert_tf_p3_") as folder:
        for variant in sizes.p3_variants:
            for layout, extra in (("fixed", ()), ("lengths", LENGTHS)):
                key = f"{variant} {layout}"
                path = convert(model.classifier, model.tokenizer, variant, folder, extra,
                               calibration)
                runner = BatchOneRunner(path, features, lengths, threads)
                predictions = np.array([int(np.argmax(runner(i))) for i in range(len(lengths))])
                accuracy[key] = float(np.mean(predictions == test_labels))
                sizes_mb[key] = os.path.getsize(path) / 2 ** 20
                runners[key] = runner
                log(f"P3 {key}: {sizes_mb[key]:.1f} MiB, accuracy {accuracy[key]:.4f} on "
                    f"{len(test_texts)} test snippets; lengths used {runner.lengths_used}")
        mean_length = float(np.mean([lengths[i] for i in latency]))
        cases = {k: ((lambda r=r: [r(i) for i in latency]), len(latency))
                 for k, r in runners.items()}
        timings = alternate(cases, sizes.warmups, sizes.repeats)
    reference = "float32 fixed"
    rows = []
    for key, timing in timings.items():
        extra = {"accuracy": accuracy[key], "mib": sizes_mb[key], "mean_tokens": mean_length,
                 "lengths_used": {str(n): c for n, c in sorted(runners[key].lengths_used.items())}}
        if reference in accuracy:
            extra["accuracy_delta_points"] = 100.0 * (accuracy[key] - accuracy[reference])
        if key == reference:
            continue
        case = f"b1 {key.replace(' ', '/')}/fp32-128"
        rows.append(Row("P3", case, f"tflite {key}", "ours", "ms", timing.latencies_ms(),
                        higher_is_better=False, extra=extra))
        if reference in timings:
            rows.append(Row("P3", case, "tflite float32 fixed-128", "peer", "ms",
                            timings[reference].latencies_ms(), higher_is_better=False,
                            extra={"accuracy": accuracy[reference]}))
    return rows
