"""Task type name (as in `bert-tf finetune <type>` and task.json) → task class, and the one place
that tells which task a bare task model solves. Code elsewhere asks the task object what to do;
nothing outside this module dispatches on model classes or task names."""

from __future__ import annotations

from bert_tf.tasks.classification import ClassificationTask, RegressionTask
from bert_tf.tasks.embedding import EmbedTask
from bert_tf.tasks.ner import NerTask
from bert_tf.tasks.squad import SquadTask

TASKS = {"classify": ClassificationTask, "regress": RegressionTask, "ner": NerTask,
         "squad": SquadTask, "embed": EmbedTask}


class UnknownTaskError(ValueError):
    """A task name, or a model, that no registered task handles."""


def task_class(task_type: str):
    if task_type not in TASKS:
        raise UnknownTaskError(f"unknown task {task_type!r}; choose one of {sorted(TASKS)}")
    return TASKS[task_type]


def make_task(task_type: str, tokenizer, label_names, task_settings: dict | None = None):
    """A task object for `tokenizer` and the label set; `task_settings` are the task's own options
    (text columns, IOB scheme, SQuAD windowing), as its `settings()` returns them. An option the
    task does not know is an error naming it."""
    cls = task_class(task_type)
    try:
        return cls(tokenizer, label_names, **(task_settings or {}))
    except TypeError as e:
        raise UnknownTaskError(f"task {task_type!r} does not take the settings "
                               f"{sorted(task_settings or {})}: {e}") from None


def with_tokenizer(task, tokenizer):
    """The same task (labels, settings) over another tokenizer: another sequence length, or the
    TFLite-compatible tokenizer."""
    return make_task(task.name, tokenizer, task.label_names, task.settings())


def default_task(model, tokenizer, labels=None, pair: bool = False):
    """The task object for a bare task model: its type from the head, labels as given or
    LABEL_0, LABEL_1, ... (Hugging Face's default), a classifier over text pairs if `pair`."""
    task_type = task_type_of_model(model)
    size = head_size(model)
    if task_type == "ner" and not labels:
        raise UnknownTaskError("a token classifier's export needs its label names (IOB2 tags, "
                               "'O' included): pass labels=")
    labels = tuple(labels) if labels else tuple(f"LABEL_{i}" for i in range(size or 0))
    if (size or 0) != len(labels):
        raise UnknownTaskError(f"{len(labels)} label names for a model whose head has {size or 0}")
    settings = {"text_pair_column": "text_pair"} if pair else {}
    if task_type == "embed":
        settings = {"pooling": model.pooling}
    if pair and task_type not in ("classify", "regress"):
        raise UnknownTaskError(f"pair=True is for classifiers; a {task_type} model's inputs are "
                               f"fixed by its task")
    return make_task(task_type, tokenizer, labels, settings)


def task_type_of_model(model) -> str:
    """The task a bert_tf task model was built for, from its head: BertClassifier with one output
    is regression, with more classification; BertTokenClassifier is NER; BertSpanLabeler SQuAD;
    BertSentenceEncoder sentence embeddings."""
    from bert_tf.models import (BertClassifier, BertSentenceEncoder, BertSpanLabeler,
                                BertTokenClassifier)
    if isinstance(model, BertClassifier):
        return "regress" if model.num_classes == 1 else "classify"
    if isinstance(model, BertTokenClassifier):
        return "ner"
    if isinstance(model, BertSpanLabeler):
        return "squad"
    if isinstance(model, BertSentenceEncoder):
        return "embed"
    raise UnknownTaskError(f"a {type(model).__name__} is not a fine-tuned task model: expected a "
                           f"BertClassifier, BertTokenClassifier, BertSpanLabeler or "
                           f"BertSentenceEncoder")


def head_size(model) -> int | None:
    """How many label names the model's head needs (None: the task has no label names)."""
    task = task_type_of_model(model)
    if task == "classify":
        return model.num_classes
    if task == "ner":
        return model.num_labels
    return None
