"""The packing index of a batch, for running a task model on packed tokens.

Why: after trimming, a batch of review snippets is still largely padding (each row is cut to the
batch's longest row, so shorter rows keep padding; measured shares are in docs/results.md). In
BERT every position-wise layer (the Q/K/V and output
projections, the feed-forward, LayerNorm) is most of the cost, and a row's real tokens never
depend on its padding. `BertTaskModel.forward(features, packing=packing_index(mask))` runs those
layers on the batch's attended tokens only (see `bert_tf.layers.transformer` for how attention
still sees [b, t] rows), with the same layers and weights as `model(features)`: the outputs agree
up to float rounding. A classifier's last layer then computes the [CLS] rows alone; per-token
heads (NER, QA) get their outputs back as [b, t, ...], zeros at the positions packing skipped.

Position 0 always counts as attended, so a mask that hides the [CLS] position still gives the
model's pooled output.

Shapes: `positions` has `n` entries (padded with position 0 up to a multiple of `token_bucket`, so
that XLA compiles one executable per bucket, not per token count); `inverse` [b * t] maps each
position to 1 + its row in the packed matrix, 0 for padding. The index has a data-dependent size,
so it is built outside an XLA function and passed in.
"""

from __future__ import annotations

import tensorflow as tf

EXACT_TOKENS = 1        # without XLA: exactly the attended tokens
DEFAULT_TOKEN_BUCKET = 64   # with XLA: token counts rounded up to a multiple of this


def packing_index(attention_mask, token_bucket: int = EXACT_TOKENS):
    """attention_mask [b, t] → (positions int32 [n'], inverse int32 [b * t]).

    positions: flat indices (row * t + column) of the attended positions, position 0 of every row
    included, then copies of index 0 up to a multiple of `token_bucket`. inverse: for each flat
    position, 1 + its index in `positions` (0: not attended)."""
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
