"""The one naming scheme every weight format is converted through: google-research/bert's.

Each format module maps its own tensor names and layouts to these canonical names with google's
layouts (dense kernels [in, out], `cls/seq_relationship/output_weights` [2, hidden]), and the model
side is described once here: canonical name → (variable, how to reshape a canonical array into it).
Loading is then one strict assignment: every variable must get exactly one tensor of the right shape.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

import numpy as np

from bert_tf import fileio


class WeightsError(ValueError):
    """A checkpoint that does not fit the model (missing, unused or mis-shaped tensors, bad files)."""


def read_json(path: str, what: str, expect: type | None = None):
    """A checkpoint's JSON file (`what` it holds, for the error); `expect` the type the value
    must have (dict for a config). A missing, undecodable or mistyped file is one WeightsError."""
    try:
        with fileio.open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing ({what})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: not valid JSON ({e})") from None
    if expect is not None and not isinstance(value, expect):
        kind = "object" if expect is dict else expect.__name__
        raise WeightsError(f"{path}: expected a JSON {kind} ({what}), got {type(value).__name__}")
    return value


@dataclasses.dataclass
class Slot:
    """One model variable and the conversions between its layout and the canonical layout."""
    variable: object                                    # a keras.Variable
    canonical_shape: tuple
    to_variable: Callable[[np.ndarray], np.ndarray]     # canonical layout → variable layout
    to_canonical: Callable[[np.ndarray], np.ndarray]    # variable layout → canonical layout


class CanonicalTensors(dict):
    """canonical name → array, remembering each tensor's name in the source checkpoint (`origin`)
    so that errors can name tensors the way the user's file names them."""

    def __init__(self, *args, origin=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.origin = dict(origin or {})

    def subset(self, names):
        return CanonicalTensors({k: self[k] for k in names}, origin={k: self.origin.get(k, k) for k in names})

    def describe(self, name):
        source = self.origin.get(name, name)
        return name if source == name else f"{source} (= {name})"


def _same(variable):
    shape = tuple(variable.shape)
    return Slot(variable, shape, lambda a: a, lambda a: a)


def _reshaped(variable, canonical_shape):
    var_shape = tuple(variable.shape)
    return Slot(variable, tuple(canonical_shape), lambda a: np.reshape(a, var_shape),
                lambda a: np.reshape(a, canonical_shape))


def _transposed(variable):
    rows, cols = variable.shape
    return Slot(variable, (cols, rows), lambda a: np.transpose(a), lambda a: np.transpose(a))


def _layer_norm(prefix, layer_norm):
    return {f"{prefix}/LayerNorm/gamma": _same(layer_norm.gamma),
            f"{prefix}/LayerNorm/beta": _same(layer_norm.beta)}


def _dense(prefix, dense):
    return {f"{prefix}/kernel": _same(dense.kernel), f"{prefix}/bias": _same(dense.bias)}


def encoder_slots(encoder) -> dict:
    """Canonical name → Slot for every variable of a `BertEncoder` (names under `bert/`)."""
    config = encoder.config
    hidden = config.hidden_size
    emb = encoder.embeddings
    slots = {
        "bert/embeddings/word_embeddings": _same(emb.word_embeddings),
        "bert/embeddings/position_embeddings": _same(emb.position_embeddings),
        "bert/embeddings/token_type_embeddings": _same(emb.token_type_embeddings),
        **_layer_norm("bert/embeddings", emb.layer_norm),
    }
    for i, block in enumerate(encoder.transformer_layers):
        prefix = f"bert/encoder/layer_{i}"
        attention = block.attention
        for name in ("query", "key", "value"):
            dense = getattr(attention, name)
            # google [hidden, hidden] kernel = ours [hidden, heads, head_size] flattened
            slots[f"{prefix}/attention/self/{name}/kernel"] = _reshaped(dense.kernel, (hidden, hidden))
            slots[f"{prefix}/attention/self/{name}/bias"] = _reshaped(dense.bias, (hidden,))
        slots[f"{prefix}/attention/output/dense/kernel"] = _reshaped(attention.output_dense.kernel,
                                                                    (hidden, hidden))
        slots[f"{prefix}/attention/output/dense/bias"] = _same(attention.output_dense.bias)
        slots.update(_layer_norm(f"{prefix}/attention/output", block.attention_layer_norm))
        slots.update(_dense(f"{prefix}/intermediate/dense", block.intermediate))
        slots.update(_dense(f"{prefix}/output/dense", block.output_dense))
        slots.update(_layer_norm(f"{prefix}/output", block.output_layer_norm))
    slots.update(_dense("bert/pooler/dense", encoder.pooler.dense))
    return slots


def pretraining_head_slots(mlm_head, nsp_head) -> dict:
    """Canonical names of the pre-training heads (`cls/...`)."""
    return {
        **_dense("cls/predictions/transform/dense", mlm_head.transform),
        **_layer_norm("cls/predictions/transform", mlm_head.layer_norm),
        "cls/predictions/output_bias": _same(mlm_head.output_bias),
        # google stores the NSP weights as [2, hidden]; a Keras Dense kernel is [hidden, 2].
        "cls/seq_relationship/output_weights": _transposed(nsp_head.dense.kernel),
        "cls/seq_relationship/output_bias": _same(nsp_head.dense.bias),
    }


# google-research/bert's fine-tuning heads (run_classifier.py, run_squad.py); a token classifier
# (not in google's code) uses the classifier's names, as TF1 BERT NER code does.
CLASSIFIER_HEAD = ("output_weights", "output_bias")
SPAN_HEAD = ("cls/squad/output_weights", "cls/squad/output_bias")
TASK_HEAD_NAMES = CLASSIFIER_HEAD + SPAN_HEAD


def dense_head_slots(dense, names: tuple) -> dict:
    """A task head's Dense under google's names: its Keras kernel [hidden, n] is stored [n, hidden]
    (`names` = CLASSIFIER_HEAD or SPAN_HEAD)."""
    weights_name, bias_name = names
    return {weights_name: _transposed(dense.kernel), bias_name: _same(dense.bias)}


def assign(slots: dict, tensors: dict, source: str, ignore: tuple = ()) -> None:
    """Strictly assigns canonical `tensors` to `slots`.

    Every slot must receive a tensor of its canonical shape and every tensor must be used, except
    names in `ignore` (the caller decides those explicitly, e.g. optimizer slots). All problems are
    collected and reported in one error, so a user sees the whole mismatch at once.
    """
    describe = tensors.describe if isinstance(tensors, CanonicalTensors) else (lambda n: n)
    ignored = {name for name in tensors if name in ignore}
    missing = sorted(set(slots) - set(tensors))
    unused = sorted(describe(n) for n in set(tensors) - set(slots) - ignored)
    mis_shaped = sorted(
        f"{describe(name)} (checkpoint {tuple(np.shape(tensors[name]))}, model expects {slot.canonical_shape})"
        for name, slot in slots.items()
        if name in tensors and tuple(np.shape(tensors[name])) != slot.canonical_shape)
    if missing or unused or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {', '.join(missing)}")
        if unused:
            parts.append(f"not used by the model: {', '.join(unused)}")
        if mis_shaped:
            parts.append(f"wrong shape: {', '.join(mis_shaped)}")
        raise WeightsError(f"{source} does not match the model — " + "; ".join(parts))
    for name, slot in slots.items():
        value = slot.to_variable(np.asarray(tensors[name]))
        slot.variable.assign(value.astype(slot.variable.dtype))


def collect(slots: dict) -> dict:
    """Canonical name → numpy array in canonical layout (for export)."""
    return {name: np.asarray(slot.to_canonical(np.asarray(slot.variable.numpy())))
            for name, slot in slots.items()}
