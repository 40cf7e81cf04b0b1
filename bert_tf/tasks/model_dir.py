"""The fine-tuned model directory: the one contract between `bert-tf finetune`, which writes it, and
everything that reads it (evaluate, predict, export saved-model, export tflite, demo, bench).

    DIR/model.keras     the task model (weights only, no optimizer state: that lives in
                        DIR/checkpoints/ for resuming); `keras.saving.load_model` loads it after
                        `import bert_tf`
    DIR/labels.json     JSON list of label names, index = class id ([] for regress, squad, embed)
    DIR/vocab.txt       the WordPiece vocabulary
    DIR/task.json       {"format_version": 2,
                         "task": "classify" | "regress" | "ner" | "squad" | "embed",
                         "max_length": int >= 8, "lowercase": bool,
                         "task_settings": {the task's own options, exactly as its settings()
                                           returns them: text columns (a pair model names its
                                           text_pair_column), NER stride, SQuAD doc_stride,
                                           max_query_length, max_answer_length, ...},
                         "metric": str, "metrics": {...}, "best_step": int | null,
                         "steps": int, "init": str, "hyperparameters": {...}}
    DIR/eval_history.json, DIR/checkpoints/, DIR/tensorboard/   (fine-tuning's own)
    DIR/curves.png      the run's training loss, learning rate and evaluations (a picture only)
    DIR/run.json        fine-tuning's run record (bert_tf.training.run_record): what a rerun
                        must match to resume; readers of the model do not need it

Reading is strict: an unknown format_version, a missing or mistyped field, a task setting the task
does not take, labels that do not fit the head, a vocabulary of another size than the model's, a
model of another task than task.json names: each is one `ModelDirError` naming the file and the
field. Version 1 (what earlier releases wrote) has the same fields and is read the same way.

Every file is written atomically (temp file + rename) and task.json last, so a directory without
task.json is an unfinished (resumable) run, never a half-written model.
"""

from __future__ import annotations

import dataclasses
import json
import os

from bert_tf import fileio
from bert_tf.atomic import atomic_path, write_text_atomic
from bert_tf.text.vocabulary import read_vocabulary, write_vocabulary

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
VOCAB_FILE = "vocab.txt"
TASK_FILE = "task.json"
HISTORY_FILE = "eval_history.json"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class ModelDirError(ValueError):
    """A fine-tuned model directory (or bare model file) that is missing a file or holds an
    inconsistent one; the message names the file and the field."""


# The name earlier releases used; kept so `except ArtifactError` keeps working.
ArtifactError = ModelDirError


# ---------------------------------------------------------------------- writing
def write_json_atomic(path: str, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def save_model_atomic(model, out_dir: str) -> str:
    """`OUT/model.keras` through a temp file, so the previous best stays intact until the new one
    is complete. The file holds the model's weights and config only: an optimizer attached by
    `compile` is left out (resuming reads DIR/checkpoints/, not this file), so its size is the
    weights' size."""
    final = os.path.join(out_dir, MODEL_FILE)
    optimizer, compiled = getattr(model, "optimizer", None), getattr(model, "compiled", False)
    with atomic_path(final, suffix=".keras") as tmp:
        # Detached for the save only (a compiled model would also record its compile config,
        # whose loader then looks for the optimizer variables left out here).
        model.optimizer, model.compiled = None, False
        try:
            model.save(tmp)
        finally:
            model.optimizer, model.compiled = optimizer, compiled
    return final


def write_labels(out_dir: str, label_names) -> None:
    write_json_atomic(os.path.join(out_dir, LABELS_FILE), list(label_names))


def write_vocab(out_dir: str, vocabulary) -> None:
    write_vocabulary(list(vocabulary), os.path.join(out_dir, VOCAB_FILE))   # atomic too


def write_task(out_dir: str, settings: dict) -> None:
    """task.json (written last). `settings` holds every field but format_version; it is checked
    against the schema before anything is written."""
    record = {"format_version": FORMAT_VERSION, **settings}
    check_task_record(record, os.path.join(out_dir, TASK_FILE))
    write_json_atomic(os.path.join(out_dir, TASK_FILE), record)


# ---------------------------------------------------------------------- reading
def read_json(path: str):
    try:
        with fileio.open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelDirError(f"{path}: missing (is this a `bert-tf finetune` output "
                            f"directory?)") from None
    except IsADirectoryError:
        raise ModelDirError(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as e:
        raise ModelDirError(f"{path}: not UTF-8 ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_task_record(record, path: str) -> dict:
    """The schema of task.json (see the module docstring); returns the record."""
    from bert_tf.tasks.registry import TASKS
    if not isinstance(record, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    version = record.get("format_version")
    if version not in READABLE_VERSIONS or not _is_int(version):
        raise ModelDirError(f"{path}: format_version {version!r} is not one this bert_tf reads "
                            f"({', '.join(map(str, READABLE_VERSIONS))}); upgrade bert_tf or "
                            f"re-run `bert-tf finetune`")
    checks = (("task", lambda v: v in TASKS, f"one of {sorted(TASKS)}"),
              ("max_length", lambda v: _is_int(v) and v >= 8, "an integer >= 8"),
              ("lowercase", lambda v: isinstance(v, bool), "true or false"),
              ("task_settings", lambda v: isinstance(v, dict), "a JSON object"))
    for key, valid, expected in checks:
        if key not in record:
            raise ModelDirError(f"{path}: missing field {key!r} ({expected})")
        if not valid(record[key]):
            raise ModelDirError(f"{path}: field {key!r} must be {expected}, got {record[key]!r}")
    return record


def read_labels(path: str) -> tuple:
    labels = read_json(path)
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise ModelDirError(f"{path}: expected a JSON list of label names (non-empty strings)")
    if len(set(labels)) != len(labels):
        raise ModelDirError(f"{path}: label names repeat: {labels}")
    return tuple(labels)


def read_task_type(directory: str) -> str:
    """The task named by DIR/task.json (checked against the schema)."""
    path = os.path.join(os.fspath(directory), TASK_FILE)
    return check_task_record(read_json(path), path)["task"]


def load_keras_model(path: str):
    """A bert_tf task model from a `.keras` file; anything Keras cannot load is one error."""
    import keras

    import bert_tf.models  # noqa: F401  (registers the bert_tf Keras classes)
    if not fileio.isfile(path):
        raise ModelDirError(f"{path}: missing")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # Keras raises a zoo of types for a corrupt or foreign archive
        raise ModelDirError(f"{path}: cannot load the Keras model ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None


@dataclasses.dataclass
class FinetunedModel:
    """A loaded model directory: the task object (with its tokenizer), the Keras model and the
    task.json record. `task.tokenizer` is the exact tokenizer the model was trained with."""
    directory: str
    task: object
    model: object
    settings: dict

    @property
    def tokenizer(self):
        return self.task.tokenizer

    @property
    def task_type(self) -> str:
        return self.settings["task"]

    @classmethod
    def load(cls, directory, sequence_length: int | None = None) -> "FinetunedModel":
        """Reads DIR (strictly, see the module docstring). `sequence_length` overrides task.json's
        max_length for the tokenizer (windows keep the trained stride)."""
        directory = os.fspath(directory)
        if not fileio.isdir(directory):
            raise ModelDirError(f"{directory}: not a directory (pass the --out of `bert-tf "
                                f"finetune`)")
        task_path = os.path.join(directory, TASK_FILE)
        settings = check_task_record(read_json(task_path), task_path)
        labels = read_labels(os.path.join(directory, LABELS_FILE))
        vocab_path = os.path.join(directory, VOCAB_FILE)
        if not fileio.isfile(vocab_path):
            raise ModelDirError(f"{vocab_path}: missing")
        model = load_keras_model(os.path.join(directory, MODEL_FILE))
        return cls._assemble(directory, model, vocab_path, settings, labels, sequence_length,
                             where=task_path)

    @classmethod
    def from_model_file(cls, path, vocab, lowercase: bool = True, max_length: int = 128,
                        labels=None, task_settings: dict | None = None) -> "FinetunedModel":
        """A bare `.keras` task model plus the vocab.txt it was trained with: the task comes from
        the model's head, labels default to LABEL_0, LABEL_1, ... (Hugging Face's default)."""
        from bert_tf.tasks.registry import UnknownTaskError, head_size, task_type_of_model
        path = os.fspath(path)
        if not (path.endswith(".keras") and fileio.isfile(path)):
            raise ModelDirError(f"{path} is neither a fine-tuned model directory nor a .keras file")
        if vocab is None or not fileio.isfile(vocab):
            raise ModelDirError(f"{path} is a bare .keras file: pass the vocab.txt it was "
                                f"trained with (--vocab)" + (f"; {vocab} does not exist" if vocab
                                                             else ""))
        model = load_keras_model(path)
        try:
            task_type = task_type_of_model(model)
        except UnknownTaskError as e:
            raise ModelDirError(f"{path}: {e}") from None
        size = head_size(model)
        labels = tuple(labels) if labels else tuple(f"LABEL_{i}" for i in range(size or 0))
        settings = {"format_version": FORMAT_VERSION, "task": task_type,
                    "max_length": int(max_length), "lowercase": bool(lowercase),
                    "task_settings": dict(task_settings or {})}
        return cls._assemble(path, model, vocab, check_task_record(settings, path), labels, None,
                             where=path)

    @classmethod
    def _assemble(cls, directory, model, vocab_path, settings, labels, sequence_length, where):
        from bert_tf.tasks.registry import (UnknownTaskError, head_size, make_task,
                                            task_type_of_model)
        from bert_tf.text import BertTokenizer
        try:
            model_task = task_type_of_model(model)
        except UnknownTaskError as e:
            raise ModelDirError(f"{directory}: {e}") from None
        if model_task != settings["task"]:
            raise ModelDirError(f"{where}: task {settings['task']!r} but the model is a "
                                f"{type(model).__name__} for {model_task!r}")
        size = head_size(model)
        if (size or 0) != len(labels):
            raise ModelDirError(f"{directory}: {len(labels)} label names for a model whose head "
                                f"has {size or 0}")
        vocabulary = read_vocabulary(vocab_path)
        if len(vocabulary) != model.encoder.config.vocab_size:
            raise ModelDirError(f"{vocab_path} has {len(vocabulary)} tokens but the model's "
                                f"vocab_size is {model.encoder.config.vocab_size}")
        length = sequence_length or settings["max_length"]
        if length > model.encoder.config.max_position_embeddings:
            raise ModelDirError(f"{where}: max_length {length} exceeds the model's "
                                f"{model.encoder.config.max_position_embeddings} positions")
        tokenizer = BertTokenizer(vocabulary, lowercase=settings["lowercase"],
                                  sequence_length=length)
        try:
            task = make_task(settings["task"], tokenizer, labels, settings["task_settings"])
        except (UnknownTaskError, ValueError) as e:
            raise ModelDirError(f"{where}: task_settings: {e}") from None
        return cls(os.fspath(directory), task, model, settings)


def checkpoint_embedding_model(path, sequence_length: int | None = None) -> FinetunedModel:
    """A sentence-transformers directory (e.g. the default all-MiniLM-L6-v2), or any encoder
    checkpoint with a vocab.txt, as an embedding model: `BertSentenceEncoder.from_pretrained`
    (pooling, projection, normalization and max_seq_length from a sentence-transformers
    directory; mean pooling and unit length otherwise, as sentence-transformers wraps a plain
    BERT) with the embed task over its tokenizer."""
    from bert_tf.models import BertSentenceEncoder
    from bert_tf.tasks.registry import make_task
    path = os.fspath(path)
    model = BertSentenceEncoder.from_pretrained(path, sequence_length=sequence_length)
    if model.tokenizer is None:
        raise ModelDirError(f"{path}: no vocab.txt beside the encoder's weights")
    settings = {"format_version": FORMAT_VERSION, "task": "embed",
                "max_length": model.tokenizer.sequence_length,
                "lowercase": model.tokenizer.lowercase,
                "task_settings": {"pooling": model.pooling}}
    task = make_task("embed", model.tokenizer, (), settings["task_settings"])
    return FinetunedModel(path, task, model, check_task_record(settings, path))


def load_model_source(path, vocab=None, **bare_options) -> FinetunedModel:
    """A model directory, a sentence-transformers directory (an embedding model), or a bare
    `.keras` file with `vocab` (and `bare_options` for `FinetunedModel.from_model_file`): what
    every export command takes as --model."""
    from bert_tf.weights.sentence_transformers import is_sentence_transformers_dir
    path = os.fspath(path)
    if fileio.isdir(path) and not fileio.exists(os.path.join(path, TASK_FILE)) \
            and is_sentence_transformers_dir(path) and vocab is None:
        return checkpoint_embedding_model(path)
    if fileio.isdir(path):
        if vocab is not None or any(v is not None for v in bare_options.values()):
            given = ["--vocab"] if vocab is not None else []
            given += [k for k, v in bare_options.items() if v is not None]
            raise ModelDirError(f"{path} is a model directory: its task.json, labels.json and "
                                f"vocab.txt define the model; {', '.join(given)} only apply to a "
                                f"bare .keras file")
        return FinetunedModel.load(path)
    return FinetunedModel.from_model_file(
        path, vocab, **{k: v for k, v in bare_options.items() if v is not None})
