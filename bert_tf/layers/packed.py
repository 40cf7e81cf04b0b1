"""Packed tokens: a batch's attended positions as one [n, ...] matrix, and the way back.

Why: a batch of short texts is largely padding, even cut to its longest row (each shorter row
keeps padding; measured shares are in docs/results.md). In BERT every position-wise layer (the
Q/K/V and output projections, the feed-forward, LayerNorm) is most of the cost, and a row's real
tokens never depend on its padding. `BertTaskModel.forward(features,
packing=packing_index(mask))` runs those layers on the batch's attended tokens only (see
`bert_tf.layers.transformer` for how attention still sees [b, t] rows), with the same layers and
weights as `model(features)`: the outputs agree up to float rounding. Serving exports and
fine-tuning both use it.

A packing is `(positions, inverse)`: `positions` int32 [n] are flat indices (row * t + column)
of the packed rows in the [b, t] batch, `inverse` int32 [b * t] maps each flat position to 1 + its
row in the packed matrix, 0 where it was not packed (`packing_index` builds both; `positions` may
end with copies of an already packed index, which `inverse` never points at). Position-wise
layers then run on n rows instead of b * t. Position 0 always counts as attended, so a mask that
hides the [CLS] position still gives the model's pooled output.
"""

import tensorflow as tf
from keras import ops

EXACT_TOKENS = 1        # without XLA: exactly the attended tokens
DEFAULT_TOKEN_BUCKET = 64   # with XLA: token counts rounded up to a multiple of this


def check_packing(packing):
    """The `(positions, inverse)` pair, or one error naming what is wrong with it."""
    if not isinstance(packing, (tuple, list)) or len(packing) != 2:
        raise ValueError(f"packing must be a (positions, inverse) pair, got {type(packing).__name__}")
    positions, inverse = packing
    if len(positions.shape) != 1 or len(inverse.shape) != 1:
        raise ValueError(f"packing positions and inverse must be 1-D, got shapes "
                         f"{tuple(positions.shape)} and {tuple(inverse.shape)}")
    return positions, inverse


def pack(values, positions):
    """[b, t, ...] → [n, ...]: the rows at the flat `positions` [n]."""
    flat = ops.reshape(values, (-1,) + tuple(values.shape[2:]))           # [b * t, ...]
    return ops.take(flat, positions, axis=0)                              # [n, ...]


def unpack(values, inverse, batch, width):
    """[n, ...] → [b, t, ...]: each packed row back at its position, zeros where none was."""
    with_zero = ops.concatenate([ops.zeros_like(values[:1]), values], axis=0)   # [1 + n, ...]
    rows = ops.take(with_zero, inverse, axis=0)                                  # [b * t, ...]
    return ops.reshape(rows, (batch, width) + tuple(values.shape[1:]))


def packed_rows(inverse, query_positions, width):
    """The packed rows [b, p] of positions [b, p] (columns of each batch row); each must have
    been packed (position 0 always is)."""
    by_position = ops.reshape(inverse, (-1, width))                                 # [b, t]
    return ops.take_along_axis(by_position, ops.cast(query_positions, "int32"), axis=1) - 1


def packing_index(attention_mask, token_bucket: int = EXACT_TOKENS):
    """attention_mask [b, t] → (positions int32 [n'], inverse int32 [b * t]).

    positions: flat indices (row * t + column) of the attended positions, position 0 of every row
    included, then copies of index 0 up to a multiple of `token_bucket` (so that XLA compiles one
    executable per bucket, not per token count). inverse: for each flat position, 1 + its index
    in `positions` (0: not attended). The index has a data-dependent size, so it is built outside
    an XLA function and passed in."""
    mask = tf.convert_to_tensor(attention_mask)
    batch, width = tf.shape(mask)[0], tf.shape(mask)[1]
    first = tf.equal(tf.range(width), 0)[tf.newaxis, :]                          # [1, t]
    attended = tf.reshape(tf.logical_or(mask > 0, first), [-1])                  # [b * t]
    positions = tf.cast(tf.where(attended)[:, 0], tf.int32)                      # [n]
    count = tf.shape(positions)[0]
    inverse = tf.reshape(   # (the reshape gives the graph a known rank)
        tf.scatter_nd(positions[:, tf.newaxis], tf.range(1, count + 1), [batch * width]), [-1])
    padded = (count + token_bucket - 1) // token_bucket * token_bucket
    positions = tf.pad(positions, [[0, padded - count]])                         # zeros: index 0
    return positions, inverse
