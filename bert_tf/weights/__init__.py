"""Weights in and out: Hugging Face, google-research/bert TF1, KerasHub and Model Garden checkpoints.

Every format converts to one canonical naming (google-research/bert's, see `canonical.py`) and loads
strictly: a missing, unused or mis-shaped tensor is an error listing every offending name.

This package sits below `bert_tf.models` and never imports it: readers return (BertConfig,
canonical tensors), and assignment and writing work on an encoder the caller built and passes in.
Building a model from a checkpoint (read → build → assign) is `bert_tf.models.pretrained`'s job.
"""

from __future__ import annotations

import json
import os

from bert_tf import fileio
from bert_tf.weights.canonical import CanonicalTensors, WeightsError, assign, collect, encoder_slots


def detect_format(path: str) -> str:
    """'keras' | 'huggingface' | 'google' | 'keras_hub' | 'model_garden' for a checkpoint path."""
    path = os.fspath(path)
    if not fileio.exists(path) and not fileio.exists(path + ".index"):
        raise WeightsError(f"No checkpoint at {path}")
    if fileio.isfile(path) and path.endswith(".keras"):
        return "keras"
    if fileio.isdir(path):
        names = set(fileio.listdir(path))
        if "bert_config.json" in names:
            return "google"
        if "config.json" in names:
            with fileio.open(os.path.join(path, "config.json"), encoding="utf-8") as f:
                try:
                    data = json.load(f)
                except json.JSONDecodeError as e:
                    raise WeightsError(f"{path}/config.json is not valid JSON ({e})") from None
            if isinstance(data, dict) and "keras_hub" in str(data.get("module", "")) + str(
                    data.get("registered_name", "")):
                return "keras_hub"
            return "huggingface"
        if any(n.endswith(".index") for n in names) or "checkpoint" in names:
            return "model_garden"
    elif fileio.exists(path + ".index"):
        return "model_garden"
    raise WeightsError(f"{path}: not a recognised checkpoint (expected an HF dir with config.json, a "
                       "google-research/bert dir with bert_config.json, a KerasHub preset dir, a Model "
                       "Garden tf.train.Checkpoint, or a .keras file)")


def read_checkpoint(path: str, config=None):
    """(BertConfig, canonical tensors) for any supported checkpoint directory (not `.keras`)."""
    fmt = detect_format(path)
    if fmt == "huggingface":
        from bert_tf.weights.huggingface import load_hf_checkpoint
        return load_hf_checkpoint(path)
    if fmt == "google":
        from bert_tf.weights.google import load_google_checkpoint
        return load_google_checkpoint(path)
    if fmt == "keras_hub":
        from bert_tf.weights.keras_hub import load_keras_hub_preset
        return load_keras_hub_preset(path)
    if fmt == "model_garden":
        from bert_tf.weights.model_garden import load_model_garden_checkpoint
        return load_model_garden_checkpoint(path, config=config)
    raise WeightsError(f"{path}: a .keras file holds a whole model; load it with keras.saving.load_model")


OUTPUT_FORMATS = ("huggingface", "google", "keras_hub")


def check_output_format(output_format: str) -> str:
    if output_format not in OUTPUT_FORMATS:
        raise WeightsError(f"Unknown output format {output_format!r}; expected one of {OUTPUT_FORMATS}")
    return output_format


def split_heads(tensors: dict) -> tuple:
    """(encoder tensors, head tensors: pre-training heads under `cls/` and task heads)."""
    from bert_tf.weights.canonical import TASK_HEAD_NAMES
    if not isinstance(tensors, CanonicalTensors):
        tensors = CanonicalTensors(tensors)
    heads = [k for k in tensors if k.startswith("cls/") or k in TASK_HEAD_NAMES]
    return tensors.subset([k for k in tensors if k not in heads]), tensors.subset(heads)


def write_checkpoint(encoder, output_dir, output_format: str = "huggingface",
                     vocab_file: str | None = None) -> str:
    """Writes the weights of `encoder` (a built `bert_tf.models.BertEncoder`, given by the caller)
    in `output_format` (one of `OUTPUT_FORMATS`), with `vocab_file` copied alongside when given."""
    check_output_format(output_format)
    if output_format == "google":
        from bert_tf.weights.google import save_google_checkpoint
        return save_google_checkpoint(encoder, output_dir, vocab_file=vocab_file)
    import shutil

    from bert_tf.atomic import staged_directory
    if output_format == "huggingface":
        from bert_tf.weights.huggingface import save_pretrained as save
    else:
        from bert_tf.weights.keras_hub import save_keras_hub_preset as save
    # The whole set (config, weights, vocab) is staged: a new directory appears by one rename, so
    # a writer killed midway leaves no directory with a config but no (or half a) vocab/weights;
    # in an existing one the config is replaced last.
    with staged_directory(output_dir, publish_order=_config_last) as staging:
        save(encoder, staging)
        if vocab_file:
            shutil.copyfile(vocab_file, os.path.join(staging, "vocab.txt"))
    return os.fspath(output_dir)


def _config_last(name: str):
    return (name.endswith(".json"), name)


__all__ = ["OUTPUT_FORMATS", "check_output_format", "CanonicalTensors", "WeightsError", "assign", "collect", "encoder_slots",
           "detect_format", "read_checkpoint", "split_heads", "write_checkpoint"]
