"""Classifier inference on packed tokens: the dense layers see only the attended positions.

Why: after trimming, a batch of review snippets is still largely padding (each row is cut to the
batch's longest row, so shorter rows keep padding; measured shares are in docs/results.md). In
BERT every position-wise layer (the Q/K/V and output
projections, the feed-forward, LayerNorm) is most of the cost, and a row's real tokens never
depend on its padding. So each layer gathers the attended positions of the whole batch into one
[n, hidden] matrix (n = real tokens) and runs the projections and the feed-forward on it; only
attention itself needs rows, and it scatters keys/values back to [b, t, heads, head_size] (a
gather of a zero row for the padding, which the -10000 bias masks out exactly as before).

A classifier needs only the [CLS] output of the last layer, so that layer projects keys and values
for every attended token but queries, attends, and runs the feed-forward for the b [CLS] rows
only: for MiniLM-L6 that skips 5/6 of one layer's position-wise work.

Every attended token and every [CLS] row goes through the same layers
(`BertSelfAttention.attend`, `BertTransformerBlock.after_attention` and `rows_output`) with the
same weights as the Keras model: the logits agree with `model(features)` up to float rounding
(matrix products of other shapes sum in another order). Position 0 always counts as attended, so
a mask that hides the [CLS] position still gives the model's pooled output.

Shapes: `positions` has `n` entries (padded with position 0 up to a multiple of `token_bucket`, so
that XLA compiles one executable per bucket, not per token count); `inverse` [b * t] maps each
position to 1 + its row in the packed matrix, 0 for padding.
"""

from __future__ import annotations

import tensorflow as tf

from bert_tf.layers import attention_bias_from_mask

EXACT_TOKENS = 1        # without XLA: exactly the attended tokens
DEFAULT_TOKEN_BUCKET = 64   # with XLA: token counts rounded up to a multiple of this


def can_pack(model) -> bool:
    """Packing covers the classifier (pooled [CLS] output → dense head)."""
    from bert_tf.models import BertClassifier
    return isinstance(model, BertClassifier)


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


def classifier_logits(model, features: dict, positions, inverse) -> dict:
    """`model(features, training=False)["logits"]` computed on packed tokens (see the module doc).
    features: int32 [b, t] `input_ids`, `token_type_ids`, `attention_mask`; positions/inverse from
    `packing_index(features["attention_mask"])`."""
    encoder = model.encoder
    ids = tf.convert_to_tensor(features["input_ids"])
    batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
    hidden = encoder.config.hidden_size

    embedded = encoder.embeddings(ids, features["token_type_ids"], training=False)   # [b, t, h]
    bias = attention_bias_from_mask(features["attention_mask"])                     # [b, 1, 1, t]
    packed = tf.gather(tf.reshape(embedded, [-1, hidden]), positions)              # [n, h]
    cls_rows = tf.reshape(inverse, [batch, width])[:, 0] - 1   # [b]: position 0's packed row

    def unpack(values):   # [n, heads, d] → [b, t, heads, d], zeros where not attended
        with_zero = tf.concat([tf.zeros_like(values[:1]), values], axis=0)
        gathered = tf.gather(with_zero, inverse)                                    # [b * t, ...]
        return tf.reshape(gathered, [batch, width, *values.shape[1:]])

    layers = encoder.transformer_layers
    for i, layer in enumerate(layers):
        attention = layer.attention
        as_rows = packed[tf.newaxis]                                                # [1, n, h]
        key = unpack(attention.key(as_rows)[0])                                     # [b, t, N, d]
        value = unpack(attention.value(as_rows)[0])                                 # [b, t, N, d]
        if i < len(layers) - 1:
            query = unpack(attention.query(as_rows)[0])                             # [b, t, N, d]
            context = attention.attend(query, key, value, bias)                     # [b, t, N, d]
            context = tf.gather(tf.reshape(context, [-1, *context.shape[2:]]), positions)  # [n, N, d]
            attended = attention.output_dense(context[tf.newaxis])[0]               # [n, h]
            packed = layer.after_attention(packed, attended)                        # [n, h]
        else:   # the last layer: the [CLS] rows only
            cls = tf.gather(packed, cls_rows)[:, tf.newaxis]                        # [b, 1, h]
            cls = layer.rows_output(cls, key, value, bias)                          # [b, 1, h]
    pooled = encoder.pooler(cls)                                                    # [b, h]
    logits = model.classifier(model.head_dropout(pooled, training=False))
    return {"logits": tf.cast(logits, tf.float32)}
