"""BERT's feed-forward activations, by the names HF and google configs use."""

import math

import keras
from keras import ops


def gelu_exact(x):
    """0.5 x (1 + erf(x / sqrt 2)): HF's "gelu" (what BERT checkpoints converted to PyTorch use)."""
    return 0.5 * x * (1.0 + ops.erf(x / ops.cast(math.sqrt(2.0), x.dtype)))


def gelu_tanh(x):
    """The tanh approximation google-research/bert's modeling.py computes (HF "gelu_new")."""
    c = ops.cast(math.sqrt(2.0 / math.pi), x.dtype)
    return 0.5 * x * (1.0 + ops.tanh(c * (x + 0.044715 * ops.power(x, 3))))


_BY_NAME = {
    "gelu": gelu_exact,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": keras.activations.relu,
}


def get_activation(name: str):
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; expected one of {', '.join(_BY_NAME)}") from None
