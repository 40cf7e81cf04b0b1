"""Hugging Face transformers BERT checkpoints: `config.json` + `model.safetensors` / `pytorch_model.bin`.

Names are converted to the canonical (google-research/bert) scheme:
    encoder.layer.3.attention.self.query.weight [out, in]  ↔  bert/encoder/layer_3/attention/self/query/kernel [in, out]
    embeddings.LayerNorm.weight                              ↔  bert/embeddings/LayerNorm/gamma
    cls.predictions.bias                                     ↔  cls/predictions/output_bias
    cls.seq_relationship.weight [2, hidden]                  ↔  cls/seq_relationship/output_weights [2, hidden]
`BertForPreTraining`/`BertFor*` checkpoints prefix the encoder with `bert.`; bare `BertModel` ones don't.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from bert_tf.atomic import atomic_path, write_text_atomic
from bert_tf.config import BertConfig
from bert_tf.weights.canonical import CanonicalTensors, WeightsError, collect, encoder_slots
from bert_tf.weights.safetensors_io import read_safetensors, read_sharded_index, write_safetensors

# Tensors HF stores that are not parameters, or are tied copies of parameters (verified on load).
_BUFFERS = ("embeddings.position_ids",)
_TIED = {"cls.predictions.decoder.weight": "bert/embeddings/word_embeddings",
         "cls.predictions.decoder.bias": "cls/predictions/output_bias"}


# Head tensors whose names follow no rule (google's NSP weights are already [2, hidden] like HF's).
_HEAD_NAMES = {"cls.predictions.bias": "cls/predictions/output_bias",
               "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
               "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}
_HEAD_NAMES_BY_CANONICAL = {canonical: hf for hf, canonical in _HEAD_NAMES.items()}


def hf_to_canonical(name: str):
    """HF tensor name → (canonical name, transpose?) or None for a name BERT does not have."""
    name = name.replace(".gamma", ".weight").replace(".beta", ".bias")  # pre-2019 PyTorch names
    if name.startswith("bert."):
        name = name[len("bert."):]
    if name in _HEAD_NAMES:
        return _HEAD_NAMES[name], False
    match = re.fullmatch(r"(.+)\.(weight|bias)", name)
    if not match:
        return None
    path, kind = match.groups()
    path = re.sub(r"encoder\.layer\.(\d+)", r"encoder.layer_\1", path)
    path = path.replace(".", "/")
    if not path.startswith("cls/"):
        path = "bert/" + path
    if path.endswith("LayerNorm"):
        return f"{path}/{'gamma' if kind == 'weight' else 'beta'}", False
    if path.endswith("_embeddings"):
        return (path, False) if kind == "weight" else None
    return f"{path}/{'kernel' if kind == 'weight' else 'bias'}", kind == "weight"


def canonical_to_hf(name: str, prefix: str = ""):
    """Canonical name → (HF name, transpose?). `prefix` is "bert." for BertFor* checkpoints."""
    if name in _HEAD_NAMES_BY_CANONICAL:
        return _HEAD_NAMES_BY_CANONICAL[name], False
    path, last = name.rsplit("/", 1)
    if path.startswith("bert/"):
        path = prefix + path[len("bert/"):]
    path = re.sub(r"layer_(\d+)", r"layer.\1", path).replace("/", ".")
    if last in ("gamma", "beta"):
        return f"{path}.{'weight' if last == 'gamma' else 'bias'}", False
    if last == "kernel":
        return f"{path}.weight", True
    if last == "bias":
        return f"{path}.bias", False
    return f"{path}.{last}.weight", False  # embedding tables


def read_hf_tensors(directory: str) -> dict:
    """Raw HF tensors from a directory: safetensors (single or sharded) or pytorch_model.bin."""
    candidates = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"]
    for filename in candidates:
        path = os.path.join(directory, filename)
        if not os.path.isfile(path):
            continue
        if filename == "model.safetensors":
            return read_safetensors(path)
        if filename.endswith(".index.json"):
            return read_sharded_index(directory, filename)
        try:
            import torch
        except ImportError:
            raise WeightsError(f"{path} is a PyTorch pickle; install torch to read it, or convert it "
                               "to model.safetensors") from None
        try:
            # weights_only=True: a checkpoint is data, never code to execute.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError/RuntimeError variants
            # torch's message runs to several lines of advice (including "weights_only=False",
            # which would run the file's code): its first line says what was refused.
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(f"Cannot load {path} with torch.load(weights_only=True), a pickle "
                               f"that is not plain tensors is refused: {first}") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise WeightsError(f"{path}: expected a state dict of tensors, got "
                               f"{type(state).__name__}")
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}
    raise WeightsError(f"{directory}: no model.safetensors, model.safetensors.index.json or "
                       "pytorch_model.bin found")


def to_canonical(hf_tensors: dict, source: str) -> dict:
    """HF tensors → canonical tensors. Unknown names are kept under their HF name (so the strict
    assignment reports them as unused); tied copies are checked, not silently dropped."""
    canonical, tied = CanonicalTensors(), {}
    for name, value in hf_tensors.items():
        bare = name[len("bert."):] if name.startswith("bert.") else name
        if bare in _BUFFERS:
            continue
        if name in _TIED:
            tied[name] = value
            continue
        converted = hf_to_canonical(name)
        if converted is None:
            canonical[name] = value
            continue
        target, transpose = converted
        if target in canonical:
            raise WeightsError(f"{source}: tensor {name} appears twice (as {target})")
        canonical[target] = np.transpose(value) if transpose else value
        canonical.origin[target] = name
    for name, value in tied.items():
        original = canonical.get(_TIED[name])
        if original is not None and (original.shape != value.shape or not np.array_equal(original, value)):
            raise WeightsError(f"{source}: {name} should be tied to {_TIED[name]} but differs; "
                               "untied decoders are not supported")
    return canonical


def load_hf_checkpoint(directory: str):
    """(BertConfig, canonical tensors) from an HF model directory."""
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise WeightsError(f"{directory}: no config.json (not a Hugging Face model directory)")
    config = BertConfig.from_json_file(config_path)
    return config, to_canonical(read_hf_tensors(directory), source=directory)


def save_pretrained(encoder, directory: str, extra_slots: dict | None = None, prefix: str = "") -> str:
    """Writes `config.json` + `model.safetensors` in HF layout; the directory appears atomically.

    `extra_slots` (canonical name → Slot) adds head weights, e.g. the pre-training heads with
    `prefix="bert."` to produce a `BertForPreTraining` checkpoint.
    """
    directory = os.fspath(directory)
    slots = encoder_slots(encoder)
    if extra_slots:
        slots.update(extra_slots)
    tensors = {}
    for name, value in collect(slots).items():
        hf_name, transpose = canonical_to_hf(name, prefix)
        tensors[hf_name] = np.transpose(value) if transpose else value
    os.makedirs(directory, exist_ok=True)
    # Each file is written under a temporary name and renamed into place: a reader (or a crash)
    # never sees a half-written config or weights file, and other files in the directory stay.
    config_data = encoder.config.to_hf_dict()
    if extra_slots:  # the architecture transformers should instantiate for a checkpoint with heads
        config_data["architectures"] = ["BertForPreTraining"]
    write_text_atomic(os.path.join(directory, "config.json"),
                      json.dumps(config_data, indent=2, sort_keys=True) + "\n")
    with atomic_path(os.path.join(directory, "model.safetensors"), suffix=".safetensors") as tmp:
        write_safetensors(tmp, tensors)
    return directory
