"""Reading what `bert-tf finetune` writes, for export: `DIR/model.keras`, `DIR/labels.json`,
`DIR/vocab.txt`, `DIR/task.json` (task type, max sequence length, lowercase, metrics).

A bare `.keras` file works too, given a vocab.txt (`vocab=`); labels then default to LABEL_i.
Key names in task.json are read leniently (`task`/`task_type`, `max_length`/`sequence_length`/
`max_seq_length`), since they are the fine-tuning command's to choose.
"""

from __future__ import annotations

import dataclasses
import json
import os

from bert_tf.export.task_spec import ExportError, TaskSpec, spec_for, task_of

_LENGTH_KEYS = ("sequence_length", "max_length", "max_seq_length")
_TASK_ALIASES = {"sentiment": "classification", "classify": "classification", "text_classification": "classification",
                 "ner": "token_classification", "tagging": "token_classification",
                 "qa": "question_answering", "squad": "question_answering"}


@dataclasses.dataclass
class ExportSource:
    """A loaded model, its tokenizer (exact path) and its TaskSpec."""
    model: object
    tokenizer: object
    spec: TaskSpec
    path: str


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None


def _labels_from(value, path):
    if isinstance(value, dict) and "labels" in value:
        value = value["labels"]
    if isinstance(value, dict):  # {"0": "neg", "1": "pos"} (id -> name)
        try:
            value = [value[k] for k in sorted(value, key=int)]
        except ValueError:
            raise ExportError(f"{path}: label keys must be integer ids, got {sorted(value)}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ExportError(f"{path}: expected a list of label names (non-empty strings)")
    return value


def load_source(path: str, vocab: str | None = None, sequence_length: int | None = None,
                lowercase: bool | None = None, pair: bool | None = None) -> ExportSource:
    """Loads a fine-tuning output dir (or a `.keras` file + `vocab`) for export."""
    import keras

    from bert_tf.text import BertTokenizer

    path = os.fspath(path)
    task_info, labels = {}, None
    if os.path.isdir(path):
        model_path = os.path.join(path, "model.keras")
        if not os.path.isfile(model_path):
            raise ExportError(f"{path} has no model.keras (expected a `bert-tf finetune` output dir)")
        vocab = vocab or os.path.join(path, "vocab.txt")
        if os.path.isfile(os.path.join(path, "task.json")):
            task_info = _read_json(os.path.join(path, "task.json"))
            if not isinstance(task_info, dict):
                raise ExportError(f"{path}/task.json: expected a JSON object")
        if os.path.isfile(os.path.join(path, "labels.json")):
            labels = _labels_from(_read_json(os.path.join(path, "labels.json")),
                                  os.path.join(path, "labels.json"))
        elif isinstance(task_info.get("labels"), list):
            labels = _labels_from(task_info["labels"], os.path.join(path, "task.json"))
    elif path.endswith(".keras") and os.path.isfile(path):
        model_path = path
        if not vocab:
            raise ExportError(f"{path} is a bare .keras file: pass the vocab.txt it was trained with")
    else:
        raise ExportError(f"{path} is neither a fine-tuning output dir nor a .keras file")
    if not os.path.isfile(vocab):
        raise ExportError(f"vocab file {vocab} does not exist")
    try:
        model = keras.saving.load_model(model_path)
    except Exception as e:  # Keras raises a zoo of types for a corrupt or foreign archive
        raise ExportError(f"{model_path}: cannot load the Keras model ({e})") from e
    task = task_info.get("task", task_info.get("task_type"))
    task = _TASK_ALIASES.get(task, task)
    if task is not None and task != task_of(model):
        raise ExportError(f"{path}/task.json says task {task!r} but model.keras is a "
                          f"{type(model).__name__} ({task_of(model)})")
    if sequence_length is None:
        sequence_length = next((task_info[k] for k in _LENGTH_KEYS if k in task_info), 128)
    if lowercase is None:
        lowercase = task_info.get("lowercase", True)
    if pair is None:
        pair = bool(task_info.get("pair", task_info.get("text_pair", False)))
    tokenizer = BertTokenizer.from_vocab_file(vocab, lowercase=bool(lowercase),
                                              sequence_length=int(sequence_length))
    if tokenizer.vocabulary_size() != model.encoder.config.vocab_size:
        raise ExportError(f"{vocab} has {tokenizer.vocabulary_size()} tokens but the model's "
                          f"vocab_size is {model.encoder.config.vocab_size}")
    spec = spec_for(model, tokenizer, labels=labels, pair=pair,
                    max_answer_length=task_info.get("max_answer_length", 30))
    return ExportSource(model=model, tokenizer=tokenizer, spec=spec, path=path)
