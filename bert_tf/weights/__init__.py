"""Weights in and out: Hugging Face, google-research/bert TF1, KerasHub and Model Garden checkpoints.

Every format converts to one canonical naming (google-research/bert's, see `canonical.py`) and loads
strictly: a missing, unused or mis-shaped tensor is an error listing every offending name.
"""

from __future__ import annotations

import json
import logging
import os

from bert_tf.weights.canonical import CanonicalTensors, WeightsError, assign, collect, encoder_slots

logger = logging.getLogger(__name__)


def detect_format(path: str) -> str:
    """'keras' | 'huggingface' | 'google' | 'keras_hub' | 'model_garden' for a checkpoint path."""
    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise WeightsError(f"No checkpoint at {path}")
    if os.path.isfile(path) and path.endswith(".keras"):
        return "keras"
    if os.path.isdir(path):
        names = set(os.listdir(path))
        if "bert_config.json" in names:
            return "google"
        if "config.json" in names:
            with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
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
    elif os.path.exists(path + ".index"):
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


def split_heads(tensors: dict) -> tuple:
    """(encoder tensors, pre-training head tensors under `cls/`)."""
    if not isinstance(tensors, CanonicalTensors):
        tensors = CanonicalTensors(tensors)
    heads = [k for k in tensors if k.startswith("cls/")]
    return tensors.subset([k for k in tensors if not k.startswith("cls/")]), tensors.subset(heads)


def load_encoder(path, config=None, **encoder_kwargs):
    """A `BertEncoder` with the weights at `path` (format detected). Pre-training heads found in the
    checkpoint are dropped on purpose (logged), since an encoder has no place for them."""
    import keras

    from bert_tf.models.encoder import BertEncoder

    if detect_format(path) == "keras":
        model = keras.saving.load_model(path)
        encoder = getattr(model, "encoder", model)
        if not isinstance(encoder, BertEncoder):
            raise WeightsError(f"{path} holds a {type(model).__name__}, not a bert_tf model")
        return encoder
    checkpoint_config, tensors = read_checkpoint(path, config=config)
    encoder = BertEncoder(config or checkpoint_config, **encoder_kwargs)
    encoder_tensors, heads = split_heads(tensors)
    if heads:
        logger.info("%s: not loading %d pre-training head tensors into an encoder (%s)", path,
                    len(heads), ", ".join(sorted(heads)))
    assign(encoder_slots(encoder), encoder_tensors, source=os.fspath(path))
    return encoder


OUTPUT_FORMATS = ("huggingface", "google", "keras_hub")


def convert_checkpoint(source, output_dir, output_format: str = "huggingface") -> str:
    """Loads the encoder at `source` (any readable format) and writes it in `output_format`."""
    if output_format not in OUTPUT_FORMATS:
        raise WeightsError(f"Unknown output format {output_format!r}; expected one of {OUTPUT_FORMATS}")
    encoder = load_encoder(source)
    vocab = os.path.join(os.fspath(source), "vocab.txt")
    vocab = vocab if os.path.isfile(vocab) else None  # the tokenizer's vocab travels along
    if output_format == "google":
        from bert_tf.weights.google import save_google_checkpoint
        return save_google_checkpoint(encoder, output_dir, vocab_file=vocab)
    if output_format == "huggingface":
        from bert_tf.weights.huggingface import save_pretrained
        path = save_pretrained(encoder, output_dir)
    else:
        from bert_tf.weights.keras_hub import save_keras_hub_preset
        path = save_keras_hub_preset(encoder, output_dir)
    if vocab:
        import shutil
        shutil.copyfile(vocab, os.path.join(path, "vocab.txt"))
    return path


__all__ = ["OUTPUT_FORMATS", "convert_checkpoint", "CanonicalTensors", "WeightsError", "assign", "collect", "encoder_slots", "detect_format", "read_checkpoint",
           "load_encoder", "split_heads"]
