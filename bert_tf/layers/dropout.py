"""Dropout whose keep mask comes from a counter-based integer hash instead of Philox.

Why: on CPU, Keras' dropout draws its mask with `stateless_uniform` (Philox random numbers), and a
BERT training step draws a lot of them: [b, s, h] after the embeddings and twice per layer, plus
[b, heads, s, s] attention probabilities per layer, so mask drawing is a visible share of a small
model's training step. Hashing each element's index with the layer's per-call key is much cheaper:
a handful of 32-bit multiplies, shifts and xors that XLA fuses into one vectorized loop (timings
in docs/results.md).

The hash is MurmurHash3's 32-bit finalizer (`fmix32`, a bijection of uint32 with full avalanche)
applied to `index * golden + key`, the SplitMix construction; element i of a call is dropped when
its hash is below `rate * 2**32` (the rate is exact to 2**-32). Statistically that is plenty for
dropout (keep rate, pairwise independence of neighbours and across calls are tested); it is not a
cryptographic or a Philox-grade stream, and masks are not those of `keras.layers.Dropout`.

Like `keras.layers.Dropout`, each call advances a `keras.random.SeedGenerator` (so the layer has
the same variables and checkpoint layout), and the mask is a pure function of (seed state, index):
the same with and without XLA, on every backend that `keras.ops` runs on.
"""

from __future__ import annotations

import keras
from keras import ops

_GOLDEN = 0x9E3779B1          # 2**32 / golden ratio: consecutive indices land far apart
_FMIX_1, _FMIX_2 = 0x85EBCA6B, 0xC2B2AE35


def _u32(value):
    return ops.convert_to_tensor(value, dtype="uint32")


def fmix32(h):
    """MurmurHash3's finalizer on a uint32 tensor (elementwise, wraps modulo 2**32)."""
    h = ops.bitwise_xor(h, ops.right_shift(h, _u32(16)))
    h = ops.multiply(h, _u32(_FMIX_1))
    h = ops.bitwise_xor(h, ops.right_shift(h, _u32(13)))
    h = ops.multiply(h, _u32(_FMIX_2))
    return ops.bitwise_xor(h, ops.right_shift(h, _u32(16)))


def hash_uniform_bits(shape_of, seed):
    """uint32 bits shaped like the tensor `shape_of`, a function of the [2] integer `seed` and of
    each element's flat index."""
    seed = ops.cast(seed, "uint32")                     # wraps int64 seed state modulo 2**32
    key = fmix32(ops.bitwise_xor(fmix32(seed[1]), ops.multiply(seed[0], _u32(_GOLDEN))))  # []
    index = ops.cast(ops.arange(ops.size(shape_of), dtype="int32"), "uint32")  # [n]
    bits = fmix32(ops.add(ops.multiply(index, _u32(_GOLDEN)), key))          # [n]
    return ops.reshape(bits, ops.shape(shape_of))


@keras.saving.register_keras_serializable(package="bert_tf")
class HashDropout(keras.layers.Layer):
    """Inverted dropout (kept values scaled by 1 / (1 - rate)) with a hashed keep mask; a drop-in
    for `keras.layers.Dropout(rate, seed)` without `noise_shape`."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        # Only with a rate, as keras.layers.Dropout does: the same variables, the same checkpoints.
        if self.rate > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        threshold = min(round(self.rate * 2.0 ** 32), 2 ** 32 - 1)
        keep = ops.greater_equal(hash_uniform_bits(inputs, self.seed_generator.next()),
                                 _u32(threshold))
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def seed_generator_states(model) -> list:
    """The [2] int state variables of every `keras.random.SeedGenerator` in `model` (dropout's
    RNGs), in `model.variables` order."""
    return [v for v in model.variables if "seed_generator_state" in v.path]


def reseed_dropout(model, seed: int) -> int:
    """Gives every dropout RNG of `model` a fresh state derived from `seed` alone; returns how
    many there were.

    Why: `keras.utils.set_random_seed(s)` fixes weight initialization and dropout together, so two
    runs can never share a head and a data order yet draw different dropout masks. Splitting the
    seeds (Dodge et al. 2020 split weight-init and data-order seeds the same way) measures how much
    of a fine-tuning result is dropout noise. The states are [seed_i, 0] with seed_i drawn from
    numpy's PCG64 seeded with `seed`, in the order of `model.variables` (fixed by the architecture).
    Only `seed_generator_state` variables change; weights are untouched.
    """
    import numpy as np
    states = seed_generator_states(model)
    draws = np.random.default_rng(seed).integers(1, 2 ** 31 - 1, size=len(states))
    for variable, draw in zip(states, draws):
        value = np.zeros(variable.shape, dtype=variable.dtype)
        value[0] = draw
        variable.assign(value)
    return len(states)
