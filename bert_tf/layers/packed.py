"""Packed tokens: a batch's attended positions as one [n, ...] matrix, and the way back.

A packing is `(positions, inverse)`: `positions` int32 [n] are flat indices (row * t + column)
of the packed rows in the [b, t] batch, `inverse` int32 [b * t] maps each flat position to 1 + its
row in the packed matrix, 0 where it was not packed (`bert_tf.export.packing.packing_index`
builds both; `positions` may end with copies of an already packed index, which `inverse` never
points at). Position-wise layers then run on n rows instead of b * t.
"""

from keras import ops


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
