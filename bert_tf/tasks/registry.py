"""Task type name (as in `bert-tf finetune <type>` and task.json) → task class."""

from __future__ import annotations

from bert_tf.tasks.classification import ClassificationTask
from bert_tf.tasks.ner import NerTask
from bert_tf.tasks.squad import SquadTask

TASKS = {"classify": ClassificationTask, "ner": NerTask, "squad": SquadTask}


def task_class(task_type: str):
    if task_type not in TASKS:
        raise ValueError(f"unknown task {task_type!r}; choose one of {sorted(TASKS)}")
    return TASKS[task_type]


def make_task(task_type: str, tokenizer, label_names, task_settings: dict | None = None):
    """A task object for `tokenizer` and the label set; `task_settings` are the task's own options
    (text columns, IOB scheme, SQuAD windowing), as its `settings()` returns them."""
    return task_class(task_type)(tokenizer, label_names, **(task_settings or {}))
