"""Cutting trailing padding off a batch before the encoder, and putting it back on per-token outputs.

Why: the tokenizer packs every row to `sequence_length` (128 by default), but a real review
snippet is ~25 word-pieces. Positions whose attention_mask is 0 get an additive -10000 bias, so
exp() gives them a weight of exactly 0 in float32: no attended token's output depends on them.
Cutting the columns after the batch's last attended position therefore changes no real output
(up to summation order, ~1e-6), while the encoder's cost falls with the length (linearly in the
projections and feed-forward, quadratically in attention).

With XLA the length is rounded up to a multiple of `bucket` (8) so that at most
`sequence_length / bucket` distinct shapes reach the encoder: that bounds recompilation (one
executable per shape), at a cost of at most `bucket - 1` wasted positions. Without XLA the graph's
kernels take any shape at no extra cost, so the default cuts to the exact length (bucket 1), which
wastes no positions (the A/B against 8-position buckets is in docs/results.md).

`run_in_length_groups` goes further: it sorts the batch by length and cuts each group of rows to
its own longest one, so one long sentence does not make the whole batch long.

"Last attended position" rather than "sum of the mask": a client of `serve_ids` may send a mask
with holes or left padding; cutting only what lies after every row's last 1 is exact for any mask.
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_BUCKET = 8       # with XLA
EXACT_BUCKET = 1         # without XLA
AUTO = "auto"            # `resolve_bucket` picks one of the two
DEFAULT_GROUP_SIZE = 8


def is_count(value) -> bool:
    """An int >= 0 (not a bool) or None: what `trim_bucket` and `group_size` accept."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def resolve_bucket(trim_bucket, jit_compile: bool):
    """`trim_bucket` as given (an int >= 0 or None; 0 and None: never cut), or for "auto" the
    default: 8-position buckets under XLA, the exact length without it."""
    if trim_bucket == AUTO:
        return DEFAULT_BUCKET if jit_compile else EXACT_BUCKET
    if not is_count(trim_bucket):
        raise ValueError(f"trim_bucket must be a non-negative integer, None or {AUTO!r}, got "
                         f"{trim_bucket!r}")
    return trim_bucket or None


def last_attended(attention_mask):
    """attention_mask [b, s] -> int32 [b]: 1 + each row's last attended position (0: none)."""
    mask = tf.convert_to_tensor(attention_mask)
    positions = tf.range(1, tf.shape(mask)[1] + 1, dtype=tf.int32)[tf.newaxis, :]  # [1, s]
    return tf.reduce_max(tf.where(mask > 0, positions, tf.zeros_like(positions)), axis=1)


def attended_length(attention_mask, bucket: int = DEFAULT_BUCKET):
    """attention_mask [b, s] -> int32 scalar: 1 + the last position any row attends to, rounded up
    to a multiple of `bucket`, at least 1 and at most s."""
    last = tf.reduce_max(last_attended(attention_mask))                          # scalar
    length = (last + bucket - 1) // bucket * bucket
    return tf.minimum(tf.maximum(length, 1), tf.shape(attention_mask)[1])


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


def run_trimmed(run_model, features: dict, bucket: int, per_token=()) -> dict:
    """`run_model` on `features` cut to `attended_length`; the outputs named in `per_token`
    ([b, t, ...]) are padded back to the input's length s."""
    width = tf.shape(features["input_ids"])[1]
    trimmed = trim_features(features, bucket)                                    # [b, t], t <= s
    # Unknown static length: one trace serves every bucket (XLA compiles one per shape).
    trimmed = {k: tf.ensure_shape(v, [None, None]) for k, v in trimmed.items()}
    outputs = run_model(trimmed)
    return {k: pad_positions(v, width) if k in per_token else v for k, v in outputs.items()}


def run_in_length_groups(run_model, features: dict, output_specs: dict, bucket: int,
                         group_size: int, per_token=()) -> dict:
    """Runs `run_model` on the batch sorted by length, `group_size` rows at a time, each group cut
    to its own longest row (rounded up to `bucket`); returns the outputs in input order.

    Why: one long review in a batch of 32 makes the other 31 pay for its length. Sorted groups of
    8 pay for their own longest row only: on real snippets (25 pieces on average, the longest of a
    batch of 32 ~60) that is about half the positions of cutting the whole batch at once, and the
    groups are still big enough (8 x 16+ positions) for efficient matrix products.

    features: dense [b, s] tensors. output_specs: name -> tf.TensorSpec of one group's output
    (per-token ones with the full length s). per_token: names of the [b, s, ...] outputs.
    """
    ids = features["input_ids"]
    batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
    order = tf.argsort(last_attended(features["attention_mask"]), stable=True)  # shortest first
    groups = tf.maximum(1, (batch + group_size - 1) // group_size)
    extra = groups * group_size - batch     # all-padding rows, put in the shortest group

    def grouped(values):                                        # [b, s] -> [groups, group, s]
        values = tf.pad(tf.gather(values, order), [[extra, 0], [0, 0]])
        return tf.reshape(values, [groups, group_size, width])

    def one_group(group):                                       # [group, s] each
        outputs = run_trimmed(run_model, group, bucket, per_token)
        return {name: outputs[name] for name in output_specs}

    stacked = tf.map_fn(one_group, {k: grouped(v) for k, v in features.items()},
                        fn_output_signature=output_specs, parallel_iterations=1)
    inverse = tf.math.invert_permutation(order)                 # input row -> sorted position
    results = {}
    for name, values in stacked.items():                        # [groups, group, ...]
        flat = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], axis=0))
        results[name] = tf.gather(flat[extra:], inverse)
    return results
