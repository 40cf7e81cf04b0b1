"""Sentence (or sentence-pair) classification: features, loss, metrics and predictions.

Records come from `bert_tf.data.classification.read_classification` (CSV/TSV/JSON Lines); texts
are packed by the in-graph tokenizer ([CLS] a [SEP] (b [SEP]) [PAD]...); the model is a
`BertClassifier` (dropout + dense on the pooled [CLS] output); the loss is the mean softmax cross
entropy; the selection metric is accuracy (macro F1 and MCC are reported too).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bert_tf import metrics, plots
from bert_tf.data.classification import ClassificationData, read_classification
from bert_tf.tasks.base import (INPUT_NAMES, TaskDataError, TaskFeatures, soft_cross_entropy,
                                tokenize_texts)


class ClassificationTask:
    name = "classify"
    # The loss never reads padding positions: training may run on packed tokens
    # (`bert_tf.tasks.base.packed_forward`).
    trains_packed = True
    metric = "accuracy"  # the eval metric that selects the best checkpoint (higher is better)
    file_suffix = ".jsonl"  # what `bert-tf evaluate` reads stdin as
    #: TFLite can hold this task's whole serving path (tokenizer, one row per input, decoding)
    lite_serving = True

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
        """The label set of a training file (sorted; integer labels by value). A classifier needs
        two labels at least: one label would build a one-output head, which is a regressor."""
        names = read_classification(path, text_column, label_column, text_pair_column).label_names
        if len(names) < 2:
            raise TaskDataError(
                f"{path}: the {label_column!r} column holds {len(names)} distinct label(s) "
                f"{list(names)}; classification needs at least 2 (for one score per text use "
                "`bert-tf finetune regress`)")
        return names

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

    # ------------------------------------------------------------------ distillation
    #: the outputs a student learns from its teacher (`bert-tf distill`), kept as
    #: targets "teacher_<name>"
    distilled_outputs = ("logits",)

    @staticmethod
    def distillation_loss(outputs, targets, temperature: float):
        """The teacher's class distribution at temperature T (`soft_cross_entropy`)."""
        return soft_cross_entropy(targets["teacher_logits"], outputs["logits"], temperature)

    @staticmethod
    def pseudo_labels(teacher_outputs: dict, extras: dict):
        """Hard labels for unlabeled texts: the teacher's argmax, int32 [n]."""
        del extras
        return np.argmax(teacher_outputs["logits"], axis=-1).astype(np.int32)

    # No label-preserving edit of a text is known for a class; more texts come as --unlabeled.
    augment = None

    # ------------------------------------------------------------------ inference (graph)
    @property
    def serving_input_names(self) -> tuple:
        return ("text", "text_pair") if self.text_pair_column is not None else ("text",)

    def record_texts(self, records: ClassificationData) -> dict:
        texts = {"text": list(records.texts)}
        if self.text_pair_column is not None:
            texts["text_pair"] = list(records.text_pairs)
        return texts

    def serving_features(self, texts: dict):
        """One row per input: [CLS] text [SEP] (text_pair [SEP]), cut to the sequence length by
        the tokenizer's rule (the longer segment loses pieces from its end first)."""
        segments = texts["text"] if len(self.serving_input_names) == 1 else \
            (texts["text"], texts["text_pair"])
        features = self.tokenizer(segments)
        return {name: features[name] for name in INPUT_NAMES}, {}

    def decode(self, outputs: dict, state: dict, texts: dict) -> dict:
        """logits [b, c] → probabilities [b, c], label_ids [b] int32, labels [b] string."""
        logits = tf.cast(outputs["logits"], tf.float32)
        label_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
                "label_ids": label_ids,
                "labels": tf.gather(tf.constant(list(self.label_names)), label_ids)}

    def warmup_texts(self) -> dict:
        texts = {"text": ["A gripping, beautifully acted film.",
                          "The plot is a mess and the jokes fall flat."]}
        if self.text_pair_column is not None:
            texts["text_pair"] = ["It was released in 2019.", "Critics disagreed."]
        return texts

    # ------------------------------------------------------------------ outputs (host)
    def score(self, records, decoded: dict) -> dict:
        return metrics.classification_metrics(np.asarray(records.labels), decoded["label_ids"])

    def report(self, records, decoded: dict, scores: dict, title: str) -> tuple:
        """(the scores, the confusion matrix and per-class precision/recall/F1; charts
        {file name: draw}) for `evaluate --report`."""
        gold, predicted = np.asarray(records.labels), np.asarray(decoded["label_ids"])
        ids = list(range(len(self.label_names)))
        matrix, _ = metrics.confusion_matrix(gold, predicted, labels=ids)
        per_class = {self.label_names[i]: scores for i, scores in
                     metrics.per_class_metrics(gold, predicted, labels=ids).items()}
        report = {"metrics": scores, "labels": list(self.label_names),
                  "confusion_matrix": matrix.tolist(), "per_class": per_class}
        names = list(self.label_names)
        charts = {
            "confusion_matrix.png": plots.confusion_matrix_chart(
                matrix, names, f"{title}: confusion matrix "
                               f"(accuracy {report['metrics']['accuracy']:.4f})"),
            "per_class.png": plots.grouped_bars(
                names, {k: [per_class[n][k] for n in names] for k in ("precision", "recall", "f1")},
                f"{title}: per class", "score", (0.0, 1.05))}
        return report, charts

    def attribution_target(self, model, window: dict):
        """What `bert-tf explain` attributes for one window [1, S]: (its name, outputs → [b]
        float32), here the logit of the label the model predicts for it."""
        label = int(np.argmax(np.asarray(model(window, training=False)["logits"])[0]))
        return (f"the logit of {self.label_names[label]!r}",
                lambda outputs: tf.cast(outputs["logits"], tf.float32)[:, label])

    @staticmethod
    def marked_spans(answer: dict):
        """None: classification marks no spans of its input (`bert-tf explain`)."""
        return None

    @staticmethod
    def input_row(records: ClassificationData, i: int) -> dict:
        """A predict row's echo of record i's input: its text (and text_pair)."""
        row = {"text": records.texts[i]}
        if records.text_pairs is not None:
            row["text_pair"] = records.text_pairs[i]
        return row

    def rows(self, records, decoded: dict) -> list:
        """One dict per record: the text(s), the predicted label and every label's probability."""
        rows = []
        for i, label in enumerate(decoded["labels"]):
            row = self.input_row(records, i)
            row["label"] = str(label)
            row["probabilities"] = {name: round(float(p), 6) for name, p in
                                    zip(self.label_names, decoded["probabilities"][i])}
            rows.append(row)
        return rows

    def settings(self) -> dict:
        return {"text_column": self.text_column, "text_pair_column": self.text_pair_column,
                "label_column": self.label_column}



class RegressionTask(ClassificationTask):
    """One score per text (or pair): a `BertClassifier` with num_classes=1 trained on the mean
    squared error, selected by Pearson correlation (GLUE STS-B's metric; Spearman and MSE are
    reported too). Labels are numbers in the label column."""

    name = "regress"
    metric = "pearson"

    def __init__(self, tokenizer, label_names=(), text_column: str = "text",
                 text_pair_column: str | None = None, label_column: str = "label"):
        super().__init__(tokenizer, (), text_column, text_pair_column, label_column)

    @staticmethod
    def read_labels(path: str, **_) -> tuple:
        return ()   # a regression head has no label names

    def read(self, path: str, labeled: bool = True) -> ClassificationData:
        data = read_classification(path, self.text_column, self.label_column if labeled else None,
                                   self.text_pair_column)
        if data.labels is None:
            return data
        try:
            values = [float(data.label_names[i]) for i in data.labels]
        except ValueError as e:
            raise TaskDataError(f"{path}: column {self.label_column!r} must hold numbers for "
                                f"regression ({e})") from None
        bad = [line for line, v in zip(data.lines, values) if not np.isfinite(v)]
        if bad:
            raise TaskDataError(f"{path}: line {bad[0]}: the label is not a finite number")
        return ClassificationData(data.texts, data.text_pairs, values, (), data.lines)

    def encode(self, records: ClassificationData, training: bool = False) -> TaskFeatures:
        inputs = tokenize_texts(self.tokenizer, records.texts, records.text_pairs)
        targets = {} if records.labels is None else {"labels": np.asarray(records.labels, np.float32)}
        return TaskFeatures(inputs, targets)

    def build_model(self, encoder):
        from bert_tf.models import BertClassifier
        return BertClassifier(encoder, 1)

    @staticmethod
    def loss(outputs, targets) -> dict:
        scores = tf.cast(outputs["logits"], tf.float32)[:, 0]            # [b]
        labels = tf.cast(targets["labels"], tf.float32)                  # [b]
        return {"loss": tf.reduce_mean(tf.square(scores - labels))}

    @staticmethod
    def distillation_loss(outputs, targets, temperature: float):
        """A score has no distribution to soften: the squared distance to the teacher's score
        (the temperature does not apply)."""
        scores = tf.cast(outputs["logits"], tf.float32)[:, 0]
        return tf.reduce_mean(tf.square(scores - tf.cast(targets["teacher_logits"], tf.float32)[:, 0]))

    @staticmethod
    def pseudo_labels(teacher_outputs: dict, extras: dict):
        del extras
        return np.asarray(teacher_outputs["logits"], np.float32)[:, 0]

    def decode(self, outputs: dict, state: dict, texts: dict) -> dict:
        """logits [b, 1] → score [b]."""
        logits = tf.cast(outputs["logits"], tf.float32)
        return {"logits": logits, "score": logits[:, 0]}

    def score(self, records, decoded: dict) -> dict:
        return metrics.regression_metrics(records.labels, decoded["score"])

    def attribution_target(self, model, window: dict):
        """`bert-tf explain` attributes the predicted score."""
        return "the score", lambda outputs: tf.cast(outputs["logits"], tf.float32)[:, 0]

    def report(self, records, decoded: dict, scores: dict, title: str) -> tuple:
        """(the scores; a predicted-against-gold scatter) for `evaluate --report`."""
        report = {"metrics": scores}
        return report, {"predicted_vs_gold.png": plots.scatter_chart(
            np.asarray(records.labels), np.asarray(decoded["score"]),
            f"{title} (pearson {report['metrics']['pearson']:.4f})", "gold score",
            "predicted score")}

    def rows(self, records, decoded: dict) -> list:
        return [{**self.input_row(records, i), "score": round(float(value), 6)}
                for i, value in enumerate(decoded["score"])]
