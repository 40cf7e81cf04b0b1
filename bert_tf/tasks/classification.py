"""Sentence (or sentence-pair) classification: features, loss, metrics and predictions.

Records come from `bert_tf.data.classification.read_classification` (CSV/TSV/JSON Lines); texts
are packed by the in-graph tokenizer ([CLS] a [SEP] (b [SEP]) [PAD]...); the model is a
`BertClassifier` (dropout + dense on the pooled [CLS] output); the loss is the mean softmax cross
entropy; the selection metric is accuracy (macro F1 and MCC are reported too).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bert_tf import metrics
from bert_tf.data.classification import ClassificationData, read_classification
from bert_tf.tasks.base import TaskDataError, TaskFeatures, tokenize_texts


class ClassificationTask:
    name = "classify"
    metric = "accuracy"  # the eval metric that selects the best checkpoint (higher is better)

    def __init__(self, tokenizer, label_names, text_column: str = "text",
                 text_pair_column: str | None = None, label_column: str = "label"):
        self.tokenizer = tokenizer
        self.label_names = tuple(label_names)
        self.text_column, self.text_pair_column = text_column, text_pair_column
        self.label_column = label_column

    # ------------------------------------------------------------------ data
    @staticmethod
    def read_labels(path: str, text_column="text", text_pair_column=None, label_column="label",
                    **_) -> tuple:
        """The label set of a training file (sorted; integer labels by value)."""
        return read_classification(path, text_column, label_column, text_pair_column).label_names

    def read(self, path: str, labeled: bool = True) -> ClassificationData:
        return read_classification(path, self.text_column, self.label_column if labeled else None,
                                   self.text_pair_column, label_names=self.label_names)

    def records_from_texts(self, texts) -> ClassificationData:
        """Unlabeled records from raw lines (prediction from stdin); a pair is `a<TAB>b`; blank
        lines are skipped."""
        numbered = [(n, t.rstrip("\r")) for n, t in enumerate(texts, 1) if t.strip()]
        texts, pairs = [t for _, t in numbered], None
        if self.text_pair_column is not None:
            split = [t.split("\t", 1) for t in texts]
            bad = [n for (n, _), s in zip(numbered, split) if len(s) != 2]
            if bad:
                raise TaskDataError(f"<stdin>: line {bad[0]}: a text-pair model needs "
                                    "'first<TAB>second'")
            texts, pairs = [s[0] for s in split], [s[1] for s in split]
        return ClassificationData(texts, pairs, None, self.label_names, [n for n, _ in numbered])

    def encode(self, records: ClassificationData, training: bool = False) -> TaskFeatures:
        inputs = tokenize_texts(self.tokenizer, records.texts, records.text_pairs)
        targets = {} if records.labels is None else {"labels": np.asarray(records.labels, np.int32)}
        return TaskFeatures(inputs, targets)

    # ------------------------------------------------------------------ model
    def build_model(self, encoder):
        from bert_tf.models import BertClassifier
        return BertClassifier(encoder, len(self.label_names))

    @staticmethod
    def loss(outputs, targets) -> dict:
        logits = tf.cast(outputs["logits"], tf.float32)   # [b, classes]
        labels = tf.cast(targets["labels"], tf.int32)     # [b]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return {"loss": loss, "accuracy": tf.reduce_mean(correct)}

    # ------------------------------------------------------------------ outputs
    def score(self, records, features: TaskFeatures, outputs: dict) -> dict:
        predicted = outputs["logits"].argmax(-1)
        return metrics.classification_metrics(np.asarray(records.labels), predicted)

    def predictions(self, records, features: TaskFeatures, outputs: dict) -> list:
        """One dict per record: the text, the predicted label and every label's probability."""
        logits = outputs["logits"]
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        rows = []
        for i, p in enumerate(probabilities):
            row = {"text": records.texts[i]}
            if records.text_pairs is not None:
                row["text_pair"] = records.text_pairs[i]
            row["label"] = self.label_names[int(p.argmax())]
            row["probabilities"] = {name: round(float(v), 6) for name, v in zip(self.label_names, p)}
            rows.append(row)
        return rows

    def settings(self) -> dict:
        return {"text_column": self.text_column, "text_pair_column": self.text_pair_column,
                "label_column": self.label_column}

