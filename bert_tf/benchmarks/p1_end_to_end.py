"""P1 end to end: raw Rotten Tomatoes test snippets in, class probabilities out, batches of 32.

Every implementation does the whole path in each timed call: tokenize the strings, run the model,
softmax, hand back numpy. Same sentences, same batch order for all.
- bert_tf export: `bert_tf.export.export_saved_model(...)` as `bert-tf export saved-model` writes
  it, loaded back from disk: in-graph tokenizer, the batch cut to its exact longest row
  (`bert_tf.export.trimming`), the classifier run on packed real tokens with a [CLS]-only last
  layer (`bert_tf.layers.packed`); what stock TF Serving runs.
- bert_tf export --xla: the same with the model as one XLA function (lengths rounded up to 8
  positions, token counts to 64: one executable per pair).
- bert_tf export --no-pack / --xla --no-pack: the two as they were before packing: rows sorted
  by length and run 8 at a time, each group cut to its own longest row.
- bert_tf export --trim-bucket 0: every row padded to 128 (the export before trimming).
- hf torch: `BertTokenizerFast` (padding to the batch's longest, its usual use) +
  `BertForSequenceClassification` (sdpa) under `torch.inference_mode()`; same weights as ours.
- keras_hub xla: `BertTextClassifierPreprocessor` (packs to 128, as KerasHub does) in a
  tf.function + `BertTextClassifier` in tf.function(jit_compile=True); same shape, its own
  initialization (KerasHub's BERT computes tanh-gelu; MiniLM's is exact gelu).
- onnxruntime: the same `BertForSequenceClassification` (eager attention) exported by torch.onnx's
  dynamo exporter (dynamic batch and length) and run by ONNX Runtime with all graph optimizations
  and the same thread count; `BertTokenizerFast` padding to the batch's longest in front, softmax
  in numpy. (torch.onnx's older TorchScript export changed a quarter of the labels: not used.)
The check: the labels of bert_tf's two shipped paths (and HF's and ONNX Runtime's) on the whole
test split, and of the two before-rows on the timed sentences, equal those of the float32 Keras
model.
"""

from __future__ import annotations

import numpy as np

from bert_tf.benchmarks.peers import ONNX_INPUTS
from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.sentiment import hf_sentiment_classifier, sentences
from bert_tf.benchmarks.timing import alternate


def _batches(texts, batch):
    return [texts[i:i + batch] for i in range(0, len(texts), batch)]


def hf_path(model):
    import torch
    from bert_tf.benchmarks.peers import hf_tokenizer
    tokenizer = hf_tokenizer(model.vocab_path)
    hf = hf_sentiment_classifier(model)

    def predict(texts):
        with torch.inference_mode():
            encoded = tokenizer(texts, padding=True, truncation=True, max_length=128,
                                return_tensors="pt")
            return torch.softmax(hf(**encoded).logits, dim=-1).numpy()
    return predict


def ort_path(model, work_dir, threads):
    import os

    from bert_tf.benchmarks.peers import eager_copy, export_onnx, hf_tokenizer, ort_session
    tokenizer = hf_tokenizer(model.vocab_path)
    path = export_onnx(eager_copy(hf_sentiment_classifier(model)), lambda out: out.logits,
                       os.path.join(work_dir, "classifier.onnx"), max_length=128)
    session = ort_session(path, threads)

    def predict(texts):
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=128,
                            return_tensors="np")
        logits = session.run(None, {k: encoded[k].astype(np.int64) for k in ONNX_INPUTS})[0]
        exp = np.exp(logits - logits.max(-1, keepdims=True))                  # [b, 2]
        return exp / exp.sum(-1, keepdims=True)
    return predict


def keras_hub_path(model):
    import keras_hub
    import tensorflow as tf
    from bert_tf.benchmarks.peers import keras_hub_backbone, keras_hub_preprocessor
    preprocessor = keras_hub_preprocessor(model.vocab_path, sequence_length=128)
    classifier = keras_hub.models.BertTextClassifier(keras_hub_backbone(model.config), num_classes=2,
                                                     preprocessor=None)
    preprocess = tf.function(preprocessor)
    probabilities = tf.function(lambda x: tf.nn.softmax(classifier(x, training=False), -1),
                                jit_compile=True)
    return lambda texts: probabilities(preprocess(tf.constant(texts))).numpy()


def keras_float32_labels(model, texts) -> np.ndarray:
    """Reference labels: the plain float32 Keras classifier, each batch of 32 cut at its longest
    row (the columns after it are padding with zero attention weight: cutting them only saves the
    time of running 128 positions)."""
    import tensorflow as tf

    from bert_tf.export.trimming import EXACT_BUCKET, trim_features

    # tf.function without XLA: the same kernels as eager Keras, without Python overhead per op.
    logits = tf.function(lambda text: model.classifier(trim_features(model.tokenizer(text), EXACT_BUCKET),
                                                       training=False)["logits"])
    return np.concatenate([np.argmax(logits(tf.constant(batch)).numpy(), -1)
                           for batch in _batches(texts, 32)])


PADDED = "bert_tf export --trim-bucket 0"
SHIPPED = ("bert_tf export", "bert_tf export --xla")   # checked on the whole test split


def saved_model_paths(model, sizes, work_dir):
    """bert_tf's SavedModels as `bert_tf.export.export_saved_model` writes them, loaded back from
    disk: the default, with XLA, and the before-rows (unpacked length groups; padded to 128)."""
    import os

    import tensorflow as tf

    from bert_tf.export import export_saved_model

    variants = {"bert_tf export": {}, "bert_tf export --xla": dict(jit_compile=True),
                "bert_tf export --no-pack": dict(pack=False),
                "bert_tf export --xla --no-pack": dict(jit_compile=True, pack=False),
                PADDED: dict(trim_bucket=0, pack=False)}
    paths, loaded = {}, []
    for i, (name, options) in enumerate(variants.items()):
        saved = tf.saved_model.load(export_saved_model(
            model.classifier, os.path.join(work_dir, f"export{i}"), tokenizer=model.tokenizer,
            write_configs=False, **options))
        loaded.append(saved)
        fn = saved.signatures["serving_default"]
        paths[name] = lambda texts, fn=fn: fn(text=tf.constant(texts))["probabilities"].numpy()
    return paths, loaded


def _labels(fn, texts, batch):
    return np.concatenate([np.argmax(fn(b), -1) for b in _batches(texts, batch)])


def run(model, sizes, work_dir, log, threads: int = 2) -> list:
    texts, _ = sentences("test", sizes.p1_batch * sizes.p1_batches)
    batches = _batches(texts, sizes.p1_batch)
    ours, keep_alive = saved_model_paths(model, sizes, work_dir)
    peers = {"hf torch": hf_path(model), "onnxruntime": ort_path(model, work_dir, threads),
             "keras_hub xla": keras_hub_path(model)}
    paths = {**ours, **peers}

    # Labels vs the float32 Keras model (this also warms up every bucket shape of the XLA path).
    # The before-rows are checked on the timed sentences only.
    check_texts, check_labels = sentences("test", sizes.p1_check_sentences)
    reference = keras_float32_labels(model, check_texts)
    extras = {}
    for name in [*ours, *(p for p in peers if p != "keras_hub xla")]:
        subset = name.startswith("bert_tf") and name not in SHIPPED
        checked = texts if subset else check_texts
        expected = reference[:len(texts)] if subset else reference
        labels = _labels(paths[name], checked, sizes.p1_batch)
        agreement = float(np.mean(labels == expected))
        accuracy = float(np.mean(labels == check_labels[:len(checked)]))
        extras[name] = {"labels_identical": agreement, "accuracy": accuracy, "checked": len(checked)}
        log(f"P1 labels: {name} vs float32 Keras {agreement:.4%} identical ({len(checked)} test "
            f"snippets), accuracy {accuracy:.4f}")
        if agreement < 1.0:
            log(f"P1 WARNING: {name} changed {int(np.sum(labels != expected))} labels")

    cases = {name: ((lambda fn=fn: [fn(b) for b in batches]), len(texts)) for name, fn in paths.items()}
    timings = alternate(cases, sizes.warmups, sizes.repeats)
    case = f"batch {sizes.p1_batch}"
    del keep_alive
    flops = model_flops(model, batches)
    rows = [Row("P1", case, name, "ours" if name.startswith("bert_tf") else "peer", "sent/s",
                timing.throughputs(), extra=dict(extras.get(name, {})))
            for name, timing in timings.items()]
    for row in rows:
        if row.impl in flops:
            # Model FLOP/s at the median rate: how much of the machine's matmul rate each path
            # turns into this model's arithmetic (tokenizing and the rest count as time only).
            row.extra["gflop_s"] = flops[row.impl] / len(texts) * row.stats["median"] / 1e9
    return rows


def model_flops(model, batches) -> dict:
    """Forward FLOPs of the timed batches per path whose shapes are known exactly: bert_tf's
    packed export (real tokens, [CLS]-only last layer; --xla rounds the shapes up a little,
    not counted), HF and ONNX Runtime (each batch padded to its longest row), KerasHub and the
    fixed-128 export (every row 128 positions). Lengths from the HF tokenizer (ids equal ours)."""
    from bert_tf.benchmarks.flops import batch_forward_flops
    from bert_tf.benchmarks.peers import hf_tokenizer
    tokenizer = hf_tokenizer(model.vocab_path)
    c = model.config
    shape = (c.hidden_size, c.num_hidden_layers, c.intermediate_size)
    lengths = [[len(ids) for ids in tokenizer(b, truncation=True, max_length=128)["input_ids"]]
               for b in batches]

    def total(**how):
        return float(sum(batch_forward_flops(n, *shape, **how) for n in lengths))
    packed, longest, fixed = total(packed=True), total(), total(width=128)
    return {"bert_tf export": packed, "bert_tf export --xla": packed, "hf torch": longest,
            "onnxruntime": longest, "keras_hub xla": fixed, PADDED: fixed}
