"""What an exported model does: its task, label names and tokenizer settings.

Serving signatures, TFLite signatures, warmup requests and the verification report all branch on
the task, so it is decided once, here, from the Keras model (and the fine-tuning output's
`task.json`/`labels.json` when there is one).
"""

from __future__ import annotations

import dataclasses

from bert_tf.models import BertClassifier, BertSpanLabeler, BertTokenClassifier

CLASSIFICATION = "classification"
REGRESSION = "regression"
TOKEN_CLASSIFICATION = "token_classification"
QUESTION_ANSWERING = "question_answering"
TASKS = (CLASSIFICATION, REGRESSION, TOKEN_CLASSIFICATION, QUESTION_ANSWERING)


class ExportError(ValueError):
    """The model, its files or the export target cannot be exported as asked."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """task: one of TASKS. labels: label id -> name (classification, tagging; IOB2 names for
    tagging). sequence_length/lowercase: the tokenizer's. pair: whether `serving_default` takes a
    second text (`text_pair`; always true for question answering, as question + context).
    max_answer_length: longest answer span in word-pieces (question answering)."""
    task: str
    labels: tuple = ()
    sequence_length: int = 128
    lowercase: bool = True
    pair: bool = False
    max_answer_length: int = 30

    def __post_init__(self):
        if self.task not in TASKS:
            raise ExportError(f"unknown task {self.task!r}; known: {TASKS}")
        if self.task in (CLASSIFICATION, TOKEN_CLASSIFICATION) and not self.labels:
            raise ExportError(f"a {self.task} export needs label names")


def task_of(model) -> str:
    """The task a bert_tf task model solves, from its class (and num_classes == 1: regression)."""
    if isinstance(model, BertClassifier):
        return REGRESSION if model.num_classes == 1 else CLASSIFICATION
    if isinstance(model, BertTokenClassifier):
        return TOKEN_CLASSIFICATION
    if isinstance(model, BertSpanLabeler):
        return QUESTION_ANSWERING
    raise ExportError(f"cannot export a {type(model).__name__}: export takes a BertClassifier, "
                      f"BertTokenClassifier or BertSpanLabeler")


def default_labels(model) -> tuple:
    """Label names when none were given: "LABEL_0", "LABEL_1", ... (the Hugging Face default)."""
    if isinstance(model, BertClassifier) and model.num_classes > 1:
        return tuple(f"LABEL_{i}" for i in range(model.num_classes))
    if isinstance(model, BertTokenClassifier):
        return tuple(f"LABEL_{i}" for i in range(model.num_labels))
    return ()


def spec_for(model, tokenizer, labels=None, pair=None, max_answer_length=30) -> TaskSpec:
    """A TaskSpec for `model` + `tokenizer`, checking the label count against the model's head."""
    task = task_of(model)
    labels = tuple(labels) if labels else default_labels(model)
    expected = {CLASSIFICATION: getattr(model, "num_classes", None),
                TOKEN_CLASSIFICATION: getattr(model, "num_labels", None)}.get(task)
    if expected is not None and len(labels) != expected:
        raise ExportError(f"{len(labels)} label names for a model with {expected} outputs")
    if task == QUESTION_ANSWERING:
        pair = True
    return TaskSpec(task=task, labels=labels, sequence_length=tokenizer.sequence_length,
                    lowercase=tokenizer.lowercase, pair=bool(pair),
                    max_answer_length=int(max_answer_length))
