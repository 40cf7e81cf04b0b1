"""Fine-tuned models across libraries: a Hugging Face `BertFor*` directory, a KerasHub
`BertTextClassifier` preset or a Model Garden task checkpoint in as a bert_tf model directory
(`bert-tf import`), and a model
directory out as `BertFor*`, a google-research/bert fine-tuning checkpoint, a KerasHub
`BertTextClassifier` preset or a sentence-transformers directory (`bert-tf convert --input DIR`).

The model directory (`model_dir`) is the one contract on our side: an imported model is read by
predict, evaluate and both exports exactly like a fine-tuned one. Weights move through the
canonical (google) names of `bert_tf.weights`, strictly: every tensor of the source is used and
every variable of the model gets one, except the pooler of a token classifier or span labeler,
which transformers' `BertForTokenClassification` / `BertForQuestionAnswering` do not have (their
outputs never read it; the imported model keeps a fresh one and the export leaves it out).

What each direction carries:
    task type        HF architecture (+ problem_type "regression")  ↔  task.json "task"
    label names      config.json id2label / label2id               ↔  labels.json
    tokenizer        tokenizer.json or vocab.txt + tokenizer_config  ↔  vocab.txt, "lowercase"
    sequence length  tokenizer_config model_max_length (capped at   ↔  "max_length"
                     max_position_embeddings)
    task settings    (HF has none: bert_tf's defaults; --pair)       →  dropped on export
"""

from __future__ import annotations

import logging
import os

from bert_tf import fileio
from bert_tf.atomic import staged_directory
from bert_tf.tasks import model_dir
from bert_tf.weights import WeightsError

logger = logging.getLogger(__name__)

# transformers architecture ↔ bert_tf task (regression is a BertForSequenceClassification whose
# config says problem_type "regression", or that has one output).
HF_TASKS = {"BertForSequenceClassification": "classify",
            "BertForTokenClassification": "ner",
            "BertForQuestionAnswering": "squad"}
HF_ARCHITECTURES = {"classify": "BertForSequenceClassification",
                    "regress": "BertForSequenceClassification",
                    "ner": "BertForTokenClassification",
                    "squad": "BertForQuestionAnswering"}
EXPORT_FORMATS = ("huggingface", "google", "keras_hub")


class InterchangeError(ValueError):
    """A model that cannot be moved between formats as asked; the message says what and why."""


# ---------------------------------------------------------------------- Hugging Face → bert_tf
def _hf_architecture(config: dict, source: str) -> str:
    """The `BertFor*` architecture config.json names; anything else is one error saying what."""
    model_type, architectures = config.get("model_type"), config.get("architectures") or []
    architecture = architectures[0] if isinstance(architectures, list) and architectures else None
    if model_type != "bert":
        raise InterchangeError(f"{source}: not a BERT model (model_type {model_type!r}, "
                               f"architecture {architecture!r}); bert_tf imports "
                               f"{', '.join(HF_TASKS)}")
    if architecture not in HF_TASKS:
        hint = (" (an encoder without a task head: use it as `bert-tf finetune --init`)"
                if architecture in ("BertModel", "BertForPreTraining", "BertForMaskedLM") else "")
        raise InterchangeError(f"{source}: architecture {architecture!r} is not one bert_tf "
                               f"imports ({', '.join(HF_TASKS)}){hint}")
    return architecture


def _hf_task(config: dict, head_rows: int, source: str) -> tuple:
    """(task type, label names) from an HF config.json and the head's output count."""
    architecture = _hf_architecture(config, source)
    task_type = HF_TASKS[architecture]
    problem = config.get("problem_type")
    if task_type == "squad":
        if head_rows != 2:
            raise InterchangeError(f"{source}: qa_outputs has {head_rows} outputs, not 2 "
                                   f"(start, end)")
        return task_type, ()
    if problem == "multi_label_classification":
        raise InterchangeError(f"{source}: problem_type 'multi_label_classification' (one "
                               f"sigmoid per label) is not a bert_tf task; classify picks one "
                               f"label per text")
    if task_type == "classify" and (problem == "regression" or head_rows == 1):
        return "regress", ()
    id2label = config.get("id2label")
    if id2label is None:
        labels = tuple(f"LABEL_{i}" for i in range(head_rows))
        logger.warning("%s: config.json has no id2label; the labels are named %s", source,
                       ", ".join(labels))
        return task_type, labels
    if not isinstance(id2label, dict) or not all(isinstance(v, str) for v in id2label.values()):
        raise InterchangeError(f"{source}: config.json id2label must map ids to label names")
    try:
        by_id = {int(k): v for k, v in id2label.items()}
    except ValueError:
        raise InterchangeError(f"{source}: config.json id2label has keys that are not ids: "
                               f"{sorted(id2label)}") from None
    if sorted(by_id) != list(range(len(id2label))):
        raise InterchangeError(f"{source}: config.json id2label ids are {sorted(id2label)}, not "
                               f"0..{len(id2label) - 1}, each once")
    labels = tuple(by_id[i] for i in range(len(by_id)))
    if len(labels) != head_rows:
        raise InterchangeError(f"{source}: the classifier head has {head_rows} outputs but "
                               f"id2label names {len(labels)} labels")
    return task_type, labels


def _head_rows(tensors, source: str) -> int:
    from bert_tf.weights.canonical import CLASSIFIER_HEAD, SPAN_HEAD
    for name in (CLASSIFIER_HEAD[0], SPAN_HEAD[0]):
        if name in tensors:
            return int(tensors[name].shape[0])
    raise InterchangeError(f"{source}: no task head weights (classifier.weight or "
                           f"qa_outputs.weight) in the checkpoint")


def import_huggingface(source: str, out: str, max_length: int | None = None,
                       pair: bool = False, labels=None) -> str:
    """Writes the model directory `out` for the transformers `BertFor*` directory `source`
    (config.json, model.safetensors / pytorch_model.bin, tokenizer files). `max_length` defaults
    to the tokenizer's model_max_length, capped at the model's position embeddings; `pair` makes
    a sequence classifier take sentence pairs (columns text, text_pair); `labels` renames the
    classes (instead of id2label). Returns `out`."""
    from bert_tf.weights import detect_format
    from bert_tf.weights.canonical import read_json
    from bert_tf.weights.huggingface import load_hf_checkpoint, read_hf_tokenizer
    source, out = os.fspath(source), os.fspath(out)
    _check_out(out)
    names = None if labels is None else tuple(labels)
    try:
        if detect_format(source) != "huggingface":
            raise InterchangeError(f"{source}: not a Hugging Face model directory (config.json "
                                   f"with model_type, and the weights)")
        raw_config = read_json(os.path.join(source, "config.json"), "the model's config", dict)
        _hf_architecture(raw_config, source)   # before the (slow) weights, and before a
        config, tensors = load_hf_checkpoint(source)  # RoBERTa config's own error
        task_type, labels = _hf_task(raw_config, _head_rows(tensors, source), source)
        tokenizer_files = read_hf_tokenizer(source)
    except WeightsError as e:
        raise InterchangeError(str(e)) from None
    if names is not None:
        if task_type not in ("classify", "ner"):
            raise InterchangeError(f"--labels: a {task_type} model has no label names")
        labels = names
    return _write_model_dir(out, source, "huggingface", config, tensors, task_type, labels,
                            tokenizer_files["vocabulary"], tokenizer_files["lowercase"],
                            max_length or min(tokenizer_files["model_max_length"]
                                              or config.max_position_embeddings,
                                              config.max_position_embeddings), pair)


def import_keras_hub(source: str, out: str, max_length: int | None = None, pair: bool = False,
                     labels=None) -> str:
    """Writes the model directory `out` for a KerasHub `BertTextClassifier` preset directory
    (`classifier.save_to_preset(dir)`). KerasHub keeps no label names: `labels` names the classes
    (default LABEL_0, LABEL_1, ... with a warning). `max_length` defaults to the preprocessor's
    sequence length. Returns `out`."""
    from bert_tf.weights.keras_hub import load_keras_hub_classifier
    source, out = os.fspath(source), os.fspath(out)
    _check_out(out)
    try:
        preset = load_keras_hub_classifier(source)
    except WeightsError as e:
        raise InterchangeError(str(e)) from None
    count = preset["num_classes"]
    if labels is None:
        labels = tuple(f"LABEL_{i}" for i in range(count))
        logger.warning("%s: KerasHub presets keep no label names; the labels are named %s "
                       "(name them with --labels)", source, ", ".join(labels))
    if preset["strip_accents"] != preset["lowercase"]:
        logger.warning("%s: the preset's tokenizer has lowercase=%s and strip_accents=%s; bert_tf "
                       "tokenizes as BERT does (uncased: lowercases and strips accents; cased: "
                       "neither), so texts with accented letters can get other ids than the "
                       "preset's preprocessor gives them", source, preset["lowercase"],
                       preset["strip_accents"])
    return _write_model_dir(out, source, "keras_hub", preset["config"], preset["tensors"],
                            "classify" if count > 1 else "regress", labels if count > 1 else (),
                            preset["vocabulary"], preset["lowercase"],
                            max_length or preset["sequence_length"], pair)


def import_model_garden(source: str, out: str, task_type: str, vocab: str,
                        lowercase: bool = True, max_length: int = 128, pair: bool = False,
                        labels=None) -> str:
    """Writes the model directory `out` for a fine-tuned Model Garden checkpoint
    (`tf.train.Checkpoint(model=BertClassifier / BertTokenClassifier / BertSpanLabeler)`).
    A checkpoint keeps only weights: the task type, the vocabulary, casing, window length and
    label names (default LABEL_0, ... with a warning; NER needs them) are given. Returns `out`."""
    from bert_tf.text.vocabulary import read_vocabulary
    from bert_tf.weights.canonical import CLASSIFIER_HEAD, SPAN_HEAD
    from bert_tf.weights.model_garden import load_model_garden_task
    source, out = os.fspath(source), os.fspath(out)
    _check_out(out)
    if task_type not in ("classify", "regress", "ner", "squad"):
        raise InterchangeError(f"--task {task_type!r}: one of classify, regress, ner, squad")
    if vocab is None:
        raise InterchangeError("--vocab is required: a Model Garden checkpoint holds no "
                               "vocabulary")
    try:
        config, tensors = load_model_garden_task(
            source, SPAN_HEAD if task_type == "squad" else CLASSIFIER_HEAD)
    except WeightsError as e:
        raise InterchangeError(str(e)) from None
    rows = _head_rows(tensors, source)
    if task_type == "regress" and rows != 1 or task_type == "squad" and rows != 2:
        raise InterchangeError(f"{source}: the head has {rows} outputs; a {task_type} head has "
                               f"{1 if task_type == 'regress' else 2}")
    if task_type in ("regress", "squad"):
        if labels is not None:
            raise InterchangeError(f"--labels: a {task_type} model has no label names")
        labels = ()
    elif labels is None:
        if task_type == "ner":
            raise InterchangeError("--labels is required for a token classifier (its IOB2 tags "
                                   "in id order)")
        labels = tuple(f"LABEL_{i}" for i in range(rows))
        logger.warning("%s: Model Garden checkpoints keep no label names; the labels are named "
                       "%s (name them with --labels)", source, ", ".join(labels))
    return _write_model_dir(out, source, "model_garden", config, tensors, task_type, labels,
                            read_vocabulary(vocab), lowercase, max_length, pair)


def _check_out(out: str) -> None:
    if fileio.exists(out) and (not fileio.isdir(out) or fileio.listdir(out)):
        raise InterchangeError(f"--out {out} exists; choose a new directory")


def _write_model_dir(out, source, source_format, config, tensors, task_type, labels, vocabulary,
                     lowercase, max_length, pair) -> str:
    """Builds the task model for the imported parts, assigns the tensors strictly (the pooler of
    a token classifier / span labeler may be absent) and writes the model directory whole."""
    from bert_tf.models import BertEncoder
    from bert_tf.models.pretrained import POOLER, task_model_slots, uses_pooler
    from bert_tf.tasks.registry import make_task
    from bert_tf.text import BertTokenizer
    from bert_tf.weights import assign
    if pair and task_type not in ("classify", "regress"):
        raise InterchangeError(f"--pair: a {task_type} model reads no sentence pairs")
    labels = tuple(labels)
    if task_type in ("classify", "ner") and len(labels) != _head_rows(tensors, source):
        raise InterchangeError(f"{source}: the head has {_head_rows(tensors, source)} outputs "
                               f"but {len(labels)} label names were given")
    if len(set(labels)) != len(labels):
        raise InterchangeError(f"{source}: a label is named twice: {list(labels)}")
    if task_type == "ner":
        odd = [t for t in labels if t != "O" and not (t[:2] in ("B-", "I-") and len(t) > 2)]
        if odd or "O" not in labels:
            raise InterchangeError(f"{source}: bert_tf's NER reads IOB2 tags ('O', 'B-X', "
                                   f"'I-X'); the labels have {odd or list(labels)}")
    limit = config.max_position_embeddings
    if not 8 <= max_length <= limit:
        raise InterchangeError(f"--max-length {max_length}: must be 8..{limit} (the model's "
                               f"position embeddings)")
    if len(vocabulary) != config.vocab_size:
        raise InterchangeError(f"{source}: the tokenizer has {len(vocabulary)} tokens but the "
                               f"model's vocab_size is {config.vocab_size}")
    tokenizer = BertTokenizer(vocabulary, lowercase=lowercase, sequence_length=max_length)
    task = make_task(task_type, tokenizer, labels,
                     {"text_pair_column": "text_pair"} if pair else {})
    model = task.build_model(BertEncoder(config))
    slots = task_model_slots(model)
    if not uses_pooler(model) and not any(name in tensors for name in POOLER):
        for name in POOLER:   # transformers has none here; the outputs never read it
            del slots[name]
    try:
        assign(slots, tensors, source=source)
    except WeightsError as e:
        raise InterchangeError(str(e)) from None
    with staged_directory(out, publish_order=lambda n: (n == model_dir.TASK_FILE, n)) as staging:
        model_dir.save_model_atomic(model, staging)
        model_dir.write_labels(staging, task.label_names)
        model_dir.write_vocab(staging, vocabulary)
        model_dir.write_task(staging, {
            "task": task_type, "max_length": max_length, "lowercase": lowercase,
            "task_settings": task.settings(), "init": fileio.abspath(source),
            "imported_from": source_format})
    return out


# ---------------------------------------------------------------------- bert_tf → others
def export_model_dir(directory: str, output: str, output_format: str = "huggingface") -> str:
    """Writes the fine-tuned model directory `directory` as `output_format`:
    - huggingface: the matching `BertFor*` (config.json with id2label / label2id and
      problem_type, model.safetensors, vocab.txt, tokenizer_config.json with do_lower_case and
      model_max_length = the model's max_length); an embedding model as a sentence-transformers
      directory;
    - google: bert_config.json + bert_model.ckpt with the head under google-research/bert's
      fine-tuning names (run_classifier.py's output_weights / output_bias, run_squad.py's
      cls/squad/...), and vocab.txt;
    - keras_hub: a `BertTextClassifier` preset (classifiers and regressors only: KerasHub has no
      BERT token classifier or QA model; its backbone runs the tanh gelu, so an exact-gelu
      encoder is refused).
    The directory appears whole (staged, then renamed). Returns `output`."""
    from bert_tf.models.pretrained import POOLER, task_model_slots, uses_pooler
    from bert_tf.weights.canonical import CLASSIFIER_HEAD, TASK_HEAD_NAMES
    from bert_tf.weights.google import save_google_checkpoint
    from bert_tf.weights.huggingface import write_hf_tokenizer, write_hf_weights
    if output_format not in EXPORT_FORMATS:
        raise InterchangeError(f"--format {output_format}: a fine-tuned model directory converts "
                               f"to {', '.join(EXPORT_FORMATS)}")
    loaded = model_dir.FinetunedModel.load(directory)
    task, model = loaded.task, loaded.model
    vocabulary = list(task.tokenizer.get_vocabulary())
    max_length = loaded.settings["max_length"]
    output = os.fspath(output)
    if loaded.task_type == "embed":
        if output_format != "huggingface":
            raise InterchangeError(f"{directory}: an embedding model converts to a "
                                   f"sentence-transformers directory (--format huggingface)")
        return model.save_sentence_transformers(output)
    slots = task_model_slots(model)
    if output_format == "keras_hub":
        from bert_tf.weights.keras_hub import save_keras_hub_classifier
        if loaded.task_type not in ("classify", "regress"):
            raise InterchangeError(f"{directory}: KerasHub has no {loaded.task_type} model for "
                                   f"BERT (only BertTextClassifier): convert it to huggingface "
                                   f"or google")
        if task.settings().get("text_pair_column"):
            logger.warning("%s: a pair classifier; KerasHub's preprocessor takes the pair as a "
                           "(text, text_pair) tuple", directory)
        heads = {name: slots[name] for name in CLASSIFIER_HEAD}
        return save_keras_hub_classifier(model.encoder, heads, vocabulary,
                                         task.tokenizer.lowercase, max_length, output,
                                         dropout=model.dropout_rate)
    if output_format == "google":
        import tempfile
        heads = {name: slots.pop(name) for name in list(slots) if name in TASK_HEAD_NAMES}
        with tempfile.TemporaryDirectory() as scratch:
            model_dir.write_vocab(scratch, vocabulary)
            save_google_checkpoint(model.encoder, output, heads=heads,
                                   vocab_file=os.path.join(scratch, model_dir.VOCAB_FILE))
        return output
    if not uses_pooler(model):
        for name in POOLER:
            del slots[name]
    config = model.encoder.config.to_hf_dict()
    config["architectures"] = [HF_ARCHITECTURES[loaded.task_type]]
    labels = list(task.label_names)
    if loaded.task_type == "regress":
        config.update(problem_type="regression", id2label={"0": "LABEL_0"},
                      label2id={"LABEL_0": 0})
    elif loaded.task_type in ("classify", "ner"):
        config.update(id2label={str(i): name for i, name in enumerate(labels)},
                      label2id={name: i for i, name in enumerate(labels)})
        if loaded.task_type == "classify":
            config["problem_type"] = "single_label_classification"
    with staged_directory(output, publish_order=lambda n: (n == "config.json", n)) as staging:
        write_hf_weights(slots, config, staging)
        write_hf_tokenizer(staging, vocabulary, task.tokenizer.lowercase, max_length)
    return output


__all__ = ["import_huggingface", "import_keras_hub", "import_model_garden", "export_model_dir",
           "InterchangeError", "HF_TASKS", "HF_ARCHITECTURES", "EXPORT_FORMATS"]
