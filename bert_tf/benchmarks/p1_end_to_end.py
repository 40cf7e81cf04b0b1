"""P1 end to end: raw Rotten Tomatoes test snippets in, class probabilities out, batches of 32.

Every implementation does the whole path in each timed call: tokenize the strings, run the model,
softmax, hand back numpy. Same sentences, same batch order for all.
- bert_tf: `TrimmedClassifierPath` (in-graph tokenizer, rows cut to the batch's bucketed longest
  length, XLA model).
- hf torch: `BertTokenizerFast` (padding to the batch's longest, its usual use) +
  `BertForSequenceClassification` (sdpa) under `torch.inference_mode()`; same weights as ours.
- keras_hub xla: `BertTextClassifierPreprocessor` (packs to 128, as KerasHub does) in a
  tf.function + `BertTextClassifier` in tf.function(jit_compile=True); same shape, its own
  initialization (KerasHub's BERT computes tanh-gelu; MiniLM's is exact gelu).
The check: bert_tf's labels equal those of the float32 Keras model on 128-padded inputs (and HF's).
"""

from __future__ import annotations

import numpy as np

from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.serving_path import TrimmedClassifierPath
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
    """Reference labels: the plain float32 Keras classifier on 128-padded features."""
    import tensorflow as tf
    # tf.function without XLA: the same kernels as eager Keras, without Python overhead per op.
    logits = tf.function(lambda text: model.classifier(model.tokenizer(text), training=False)["logits"])
    return np.concatenate([np.argmax(logits(tf.constant(batch)).numpy(), -1)
                           for batch in _batches(texts, 32)])


def run(model, sizes, log) -> list:
    texts, _ = sentences("test", sizes.p1_batch * sizes.p1_batches)
    batches = _batches(texts, sizes.p1_batch)
    ours = TrimmedClassifierPath(model.tokenizer, model.classifier, bucket=sizes.p1_bucket)
    paths = {"bert_tf tf.function+xla trimmed": ours, "hf torch": hf_path(model),
             "keras_hub xla": keras_hub_path(model)}

    # Labels first (also the warm-up of every bucket shape of ours).
    check_texts, check_labels = sentences("test", sizes.p1_check_sentences)
    reference = keras_float32_labels(model, check_texts)
    our_labels = np.concatenate([np.argmax(ours(b), -1) for b in _batches(check_texts, sizes.p1_batch)])
    hf_labels = np.concatenate([np.argmax(paths["hf torch"](b), -1)
                                for b in _batches(check_texts, sizes.p1_batch)])
    agreement = float(np.mean(our_labels == reference))
    hf_agreement = float(np.mean(hf_labels == reference))
    accuracy = float(np.mean(our_labels == check_labels))
    log(f"P1 labels: bert_tf fast path vs float32 Keras {agreement:.4%} identical "
        f"({len(check_texts)} test snippets), HF vs Keras {hf_agreement:.4%}, accuracy {accuracy:.4f}")
    if agreement < 1.0:
        log(f"P1 WARNING: the trimmed XLA path changed {int(np.sum(our_labels != reference))} of "
            f"{len(check_texts)} labels vs the float32 Keras model")

    cases = {name: ((lambda fn=fn: [fn(b) for b in batches]), len(texts)) for name, fn in paths.items()}
    timings = alternate(cases, sizes.warmups, sizes.repeats)
    case = f"batch {sizes.p1_batch}"
    rows = []
    for name, timing in timings.items():
        extra = {}
        if name.startswith("bert_tf"):
            extra = {"labels_identical": agreement, "accuracy": accuracy,
                     "checked": len(check_texts)}
        rows.append(Row("P1", case, name, "ours" if name.startswith("bert_tf") else "peer",
                        "sent/s", timing.throughputs(), extra=extra))
    return rows
