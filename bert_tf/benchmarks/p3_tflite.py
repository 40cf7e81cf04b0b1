"""P3 TFLite: the sentiment classifier converted four ways, run at batch 1 on real sentence lengths.

Variants (TFLiteConverter on a [1, None] int32 `input_ids` signature -> `probabilities` [1, 2]):
  float32       no optimization
  float16       weights stored as float16 (dequantized to float32 at load on CPU)
  dynamic_int8  weights int8, activations quantized on the fly (Optimize.DEFAULT)
  full_int8     weights and activations int8, calibrated on real training snippets; ops with no
                int8 kernel stay float (TFLITE_BUILTINS_INT8 + TFLITE_BUILTINS)
Each sentence is tokenized beforehand (bert_tf tokenizer, unpadded: its real length); timing covers
resize + invoke + read-out, i.e. the model at that length. Accuracy is over the test split, and the
delta is against float32 TFLite.
"""

from __future__ import annotations

import numpy as np

from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.sentiment import sentences
from bert_tf.benchmarks.timing import BenchmarkError, alternate

VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")


def unpadded_ids(tokenizer, texts) -> list:
    """Each text -> int32 [1, its length] ids ([CLS] ... [SEP], no padding)."""
    import tensorflow as tf
    features = tf.function(tokenizer)(tf.constant(texts))
    ids = features["input_ids"].numpy()
    lengths = features["attention_mask"].numpy().sum(axis=1)
    return [ids[i:i + 1, :n].astype(np.int32) for i, n in enumerate(lengths)]


def convert(classifier, variant: str, calibration_ids=()) -> bytes:
    import tensorflow as tf

    if variant not in VARIANTS:
        raise BenchmarkError(f"unknown TFLite variant {variant!r}; choose from {VARIANTS}")

    class Probabilities(tf.Module):
        def __init__(self):
            super().__init__()
            # Track the variables' tf.Variables so the converter sees them frozen (Keras 3 trap).
            self.weights = [v.value for v in classifier.variables]

        @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32, name="input_ids")])
        def __call__(self, input_ids):
            features = {"input_ids": input_ids, "token_type_ids": tf.zeros_like(input_ids),
                        "attention_mask": tf.ones_like(input_ids)}
            logits = classifier(features, training=False)["logits"]        # [1, 2]
            return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    module = Probabilities()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "full_int8":
        if not calibration_ids:
            raise BenchmarkError("full_int8 needs calibration sentences")
        converter.representative_dataset = lambda: ([ids] for ids in calibration_ids)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


class BatchOneRunner:
    """A LiteRT interpreter resized to each sentence's length; call(ids [1, n]) -> probs [2]."""

    def __init__(self, model: bytes, threads: int):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_content=model, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.length = None

    def __call__(self, ids):
        if ids.shape[1] != self.length:
            self.interpreter.resize_tensor_input(self.input, ids.shape, strict=True)
            self.interpreter.allocate_tensors()
            self.length = ids.shape[1]
        self.interpreter.set_tensor(self.input, ids)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)[0]


def run(model, sizes, threads: int, log) -> list:
    calibration = unpadded_ids(model.tokenizer, sentences("train", sizes.p3_calibration_sentences)[0])
    test_texts, test_labels = sentences("test", sizes.p3_accuracy_sentences)
    test_ids = unpadded_ids(model.tokenizer, test_texts)
    latency_ids = test_ids[:sizes.p3_latency_sentences]

    runners, accuracy, sizes_mb = {}, {}, {}
    for variant in sizes.p3_variants:
        flatbuffer = convert(model.classifier, variant, calibration)
        runner = BatchOneRunner(flatbuffer, threads)
        predictions = np.array([int(np.argmax(runner(ids))) for ids in test_ids])
        accuracy[variant] = float(np.mean(predictions == test_labels))
        sizes_mb[variant] = len(flatbuffer) / 2 ** 20
        runners[variant] = runner
        log(f"P3 {variant}: {sizes_mb[variant]:.1f} MiB, accuracy {accuracy[variant]:.4f} "
            f"on {len(test_ids)} test snippets")

    mean_length = float(np.mean([ids.shape[1] for ids in latency_ids]))
    cases = {v: ((lambda r=r: [r(ids) for ids in latency_ids]), len(latency_ids))
             for v, r in runners.items()}
    timings = alternate(cases, sizes.warmups, sizes.repeats)
    reference = "float32"
    rows = []
    for variant, timing in timings.items():
        extra = {"accuracy": accuracy[variant], "mib": sizes_mb[variant],
                 "mean_tokens": mean_length}
        if reference in accuracy:
            extra["accuracy_delta_points"] = 100.0 * (accuracy[variant] - accuracy[reference])
        if variant == reference:
            continue
        case = f"b1 {variant}/fp32"
        rows.append(Row("P3", case, f"tflite {variant}", "ours", "ms", timing.latencies_ms(),
                        higher_is_better=False, extra=extra))
        if reference in timings:
            rows.append(Row("P3", case, "tflite float32", "peer", "ms",
                            timings[reference].latencies_ms(), higher_is_better=False,
                            extra={"accuracy": accuracy[reference]}))
    if reference in timings and len(timings) == 1:
        rows.append(Row("P3", "b1 float32", "tflite float32", "info", "ms",
                        timings[reference].latencies_ms(), higher_is_better=False,
                        extra={"accuracy": accuracy[reference]}))
    return rows
