"""Cutting trailing padding off a batch before the encoder, and putting it back on per-token outputs.

Why: the tokenizer packs every row to `sequence_length` (128 by default), but a real review
snippet is ~25 word-pieces. Positions whose attention_mask is 0 get an additive -10000 bias, so
exp() gives them a weight of exactly 0 in float32: no attended token's output depends on them.
Cutting the columns after the batch's last attended position therefore changes no real output
(up to summation order, ~1e-6), while the encoder's cost falls with the length (linearly in the
projections and feed-forward, quadratically in attention).

The length is rounded up to a multiple of `bucket` so that at most `sequence_length / bucket`
distinct shapes reach the encoder: that bounds XLA recompilation (one executable per shape) and
TF Serving's shape-keyed caches, at a cost of at most `bucket - 1` wasted positions.

"Last attended position" rather than "sum of the mask": a client of `serve_ids` may send a mask
with holes or left padding; cutting only what lies after every row's last 1 is exact for any mask.
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_BUCKET = 16


def attended_length(attention_mask, bucket: int = DEFAULT_BUCKET):
    """attention_mask [b, s] -> int32 scalar: 1 + the last position any row attends to, rounded up
    to a multiple of `bucket`, at least 1 and at most s."""
    mask = tf.convert_to_tensor(attention_mask)
    width = tf.shape(mask)[1]
    positions = tf.range(1, width + 1, dtype=tf.int32)[tf.newaxis, :]             # [1, s]
    last = tf.reduce_max(tf.where(mask > 0, positions, tf.zeros_like(positions)))  # scalar
    length = (last + bucket - 1) // bucket * bucket
    return tf.minimum(tf.maximum(length, 1), width)


def trim_features(features: dict, bucket: int = DEFAULT_BUCKET) -> dict:
    """Dense [b, s] features (with `attention_mask`) -> the same cut to `attended_length` columns.
    Every [b, s] tensor in `features` is cut; nothing else may be in it."""
    if bucket < 1:
        raise ValueError(f"bucket must be >= 1, got {bucket}")
    length = attended_length(features["attention_mask"], bucket)
    return {name: value[:, :length] for name, value in features.items()}


def pad_positions(values, width):
    """Per-token outputs [b, t, ...] -> [b, width, ...] with zeros after position t, so outputs keep
    the input's sequence length (the padded positions were masked out of the input)."""
    values = tf.convert_to_tensor(values)
    missing = width - tf.shape(values)[1]
    paddings = tf.concat([[[0, 0], [0, missing]],
                          tf.zeros([tf.rank(values) - 2, 2], tf.int32)], axis=0)
    return tf.pad(values, paddings)
