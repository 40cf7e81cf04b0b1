"""The sentiment classifier P1 and P3 measure: a BERT encoder + a linear head fitted on real data.

The real setting is MiniLM-L6 (the pinned real weights, bert-base-uncased vocab) with its pooled
[CLS] output fed to a 2-way dense head. Fine-tuning the encoder would take far longer than a
benchmark may, so the head is a logistic-regression probe fitted (Newton's method, L2) on pooled
outputs of Rotten Tomatoes training snippets: real, if modest, accuracy, so the TFLite variants'
accuracy deltas in P3 mean something. The tiny setting uses a small random encoder (smoke tests).

The same weights go to Hugging Face (`save_pretrained` → `BertForSequenceClassification`), so P1
also checks that HF's labels agree with ours.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from bert_tf.benchmarks.timing import BenchmarkError
from bert_tf.config import BertConfig


@dataclass
class SentimentModel:
    config: BertConfig
    vocab_path: str
    classifier: object         # bert_tf.BertClassifier, float32
    tokenizer: object          # bert_tf.BertTokenizer, sequence_length 128
    hf_dir: str                # HF layout of the same encoder (config.json + model.safetensors)
    head_kernel: np.ndarray    # [hidden, 2]
    head_bias: np.ndarray      # [2]
    probe_accuracy: float      # training accuracy of the probe
    real_weights: bool


def sentences(split: str, limit: int | None = None) -> tuple:
    """(texts, labels) of the Rotten Tomatoes split, in file order, at most `limit` of them."""
    from bert_tf.data.datasets import rotten_tomatoes
    examples = rotten_tomatoes(split)
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise BenchmarkError(f"no Rotten Tomatoes sentences in split {split!r} (limit {limit})")
    return [t for t, _ in examples], np.array([y for _, y in examples], dtype=np.int64)


def fit_logistic_probe(features: np.ndarray, labels: np.ndarray, l2: float = 1.0,
                       iterations: int = 25) -> tuple:
    """Binary logistic regression by Newton's method. features [n, h], labels [n] in {0, 1}
    -> (w [h], b): P(label 1) = sigmoid(features @ w + b)."""
    n, h = features.shape
    x = np.concatenate([features, np.ones((n, 1))], axis=1).astype(np.float64)  # [n, h+1]
    theta = np.zeros(h + 1)
    penalty = l2 * np.eye(h + 1)
    penalty[h, h] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-x @ theta))                       # [n]
        gradient = x.T @ (p - labels) + penalty @ theta            # [h+1]
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty     # [h+1, h+1]
        theta -= np.linalg.solve(hessian, gradient)
    return theta[:h], theta[h]


def build_sentiment_model(real_weights: bool, probe_sentences: int, work_dir: str,
                          tiny_config: BertConfig | None = None) -> SentimentModel:
    import keras
    import tensorflow as tf

    from bert_tf.data.fetch import minilm_dir, minilm_vocab
    from bert_tf.models import BertClassifier, BertEncoder
    from bert_tf.text import BertTokenizer

    if real_weights:
        encoder = BertEncoder.from_pretrained(minilm_dir())
        vocab_path = os.path.join(minilm_dir(), "vocab.txt")
    else:
        keras.utils.set_random_seed(0)
        encoder = BertEncoder(tiny_config or BertConfig.preset("tiny"))
        vocab_path = minilm_vocab()
    config = encoder.config
    classifier = BertClassifier(encoder, num_classes=2)
    tokenizer = BertTokenizer.from_vocab_file(vocab_path, lowercase=True, sequence_length=128)

    # Pooled [CLS] outputs of training snippets -> probe weights.
    texts, labels = sentences("train", probe_sentences)
    pooled_fn = tf.function(lambda f: encoder(f, training=False)["pooled_output"], jit_compile=True)
    tokenize = tf.function(tokenizer)
    pooled = np.concatenate([pooled_fn(tokenize(tf.constant(texts[i:i + 32]))).numpy()
                             for i in range(0, len(texts), 32)])               # [n, hidden]
    w, b = fit_logistic_probe(pooled.astype(np.float64), labels)
    # Two logits whose difference is the probe's log-odds: softmax = (1 - p, p).
    kernel = np.stack([-w / 2, w / 2], axis=1).astype(np.float32)             # [hidden, 2]
    bias = np.array([-b / 2, b / 2], dtype=np.float32)
    classifier.classifier.set_weights([kernel, bias])
    probe_accuracy = float(np.mean(((pooled @ w + b) > 0).astype(np.int64) == labels))

    hf_dir = tempfile.mkdtemp(prefix="hf-", dir=work_dir)
    encoder.save_pretrained(hf_dir)
    return SentimentModel(config, vocab_path, classifier, tokenizer, hf_dir, kernel, bias,
                          probe_accuracy, real_weights)


def hf_sentiment_classifier(model: SentimentModel):
    """transformers `BertForSequenceClassification` with the same encoder and head, eval mode."""
    import torch
    import transformers
    hf = transformers.BertForSequenceClassification.from_pretrained(
        model.hf_dir, num_labels=2, attn_implementation="sdpa")
    with torch.no_grad():
        hf.classifier.weight.copy_(torch.from_numpy(model.head_kernel.T.copy()))
        hf.classifier.bias.copy_(torch.from_numpy(model.head_bias))
    return hf.eval()
