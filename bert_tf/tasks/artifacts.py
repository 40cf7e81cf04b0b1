"""The fine-tuning output directory: what `bert-tf finetune` writes and what evaluate, predict and
export read back (layout documented in `bert_tf.tasks`).

Every file is written atomically (temp file in the same directory, then `os.replace`), so a reader
never sees half a file; `task.json` is written last, so a directory without it is an unfinished run.
"""

from __future__ import annotations

import json
import os

from bert_tf.atomic import atomic_path, write_text_atomic
from bert_tf.text.vocabulary import read_vocabulary, write_vocabulary

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
VOCAB_FILE = "vocab.txt"
TASK_FILE = "task.json"
HISTORY_FILE = "eval_history.json"
TASK_TYPES = ("classify", "ner", "squad")
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """A fine-tuning output directory that is missing a file or holds an inconsistent one."""


def write_json_atomic(path: str, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing (is this a `bert-tf finetune` output directory?)") from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def save_model_atomic(model, out_dir: str) -> str:
    """`model.save(OUT/model.keras)` through a temp file, so the previous best stays intact until
    the new one is complete."""
    final = os.path.join(out_dir, MODEL_FILE)
    with atomic_path(final, suffix=".keras") as tmp:
        model.save(tmp)
    return final


def write_labels(out_dir: str, label_names) -> None:
    write_json_atomic(os.path.join(out_dir, LABELS_FILE), list(label_names))


def write_vocab(out_dir: str, vocabulary) -> None:
    # write_vocabulary goes through a temp file as well
    write_vocabulary(list(vocabulary), os.path.join(out_dir, VOCAB_FILE))


def write_task(out_dir: str, settings: dict) -> None:
    if settings.get("task") not in TASK_TYPES:
        raise ArtifactError(f"task must be one of {TASK_TYPES}, got {settings.get('task')!r}")
    write_json_atomic(os.path.join(out_dir, TASK_FILE), {"format_version": FORMAT_VERSION, **settings})


class FinetunedModel:
    """A loaded output directory: `task` (the task object, with its tokenizer), `model`, `settings`."""

    def __init__(self, directory: str, task, model, settings: dict):
        self.directory, self.task, self.model, self.settings = directory, task, model, settings

    @classmethod
    def load(cls, directory: str, sequence_length: int | None = None) -> "FinetunedModel":
        import keras

        import bert_tf.models  # noqa: F401  (registers the bert_tf Keras classes)
        from bert_tf.tasks.registry import make_task
        from bert_tf.text import BertTokenizer

        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise ArtifactError(f"{directory}: not a directory (pass the --out of `bert-tf finetune`)")
        settings = read_json(os.path.join(directory, TASK_FILE))
        if not isinstance(settings, dict) or settings.get("task") not in TASK_TYPES:
            raise ArtifactError(f"{directory}/{TASK_FILE}: 'task' must be one of {TASK_TYPES}")
        for key in ("max_length", "lowercase"):
            if key not in settings:
                raise ArtifactError(f"{directory}/{TASK_FILE}: missing {key!r}")
        labels = read_json(os.path.join(directory, LABELS_FILE))
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ArtifactError(f"{directory}/{LABELS_FILE}: expected a JSON list of label names")
        vocab_path = os.path.join(directory, VOCAB_FILE)
        if not os.path.exists(vocab_path):
            raise ArtifactError(f"{vocab_path}: missing")
        model_path = os.path.join(directory, MODEL_FILE)
        if not os.path.exists(model_path):
            raise ArtifactError(f"{model_path}: missing")
        tokenizer = BertTokenizer(read_vocabulary(vocab_path), lowercase=settings["lowercase"],
                                  sequence_length=sequence_length or settings["max_length"])
        model = keras.saving.load_model(model_path)
        task = make_task(settings["task"], tokenizer, labels, settings.get("task_settings", {}))
        return cls(directory, task, model, settings)
