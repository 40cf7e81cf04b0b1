"""Multi-head attention laid out like BERT's checkpoints.

Query/key/value kernels are [hidden, heads, head_size] and the output kernel [heads, head_size, hidden]:
a google-research/bert `query/kernel` [hidden, hidden] is exactly this tensor reshaped, and HF's
`query.weight` [hidden, hidden] is its transpose reshaped, so weights map 1:1 without re-ordering.
"""

import math

import keras
from keras import ops

from bert_tf.layers.dropout import HashDropout
from bert_tf.layers.initializers import truncated_normal

# BERT's own additive mask value (google-research/bert modeling.py: `(1.0 - mask) * -10000.0`).
# exp(-10000) underflows to exactly 0 in float32, and -1e4 is finite in float16 (max 65504) and
# bfloat16, and small enough in magnitude to keep int8 calibration ranges sane in TFLite.
MASK_VALUE = -10000.0


def attention_bias_from_mask(attention_mask, mask_value=MASK_VALUE, dtype="float32"):
    """[batch, seq] 1/0 mask → additive bias [batch, 1, 1, seq]: 0 where attended, `mask_value`
    (BERT's -1e4 by default) where padding."""
    mask = ops.cast(attention_mask, dtype)
    return (1.0 - mask)[:, None, None, :] * mask_value


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSelfAttention(keras.layers.Layer):
    """Scaled dot-product attention over BERT's projection layout.

    The four projections are sublayers (`query`, `key`, `value`: [b, s, hidden] → [b, s, heads,
    head_size]; `output_dense`: [b, s, heads, head_size] → [b, s, hidden]) that the transformer
    block applies to the rows it computes (all positions, some, or packed tokens); `call` is the
    attention between projected heads. Softmax runs in float32 under mixed precision; dropout is
    applied to the attention probabilities as in BERT.
    """

    def __init__(self, *, hidden_size, num_attention_heads, attention_dropout=0.1,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by "
                             f"num_attention_heads {num_attention_heads}")
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.head_size = hidden_size // num_attention_heads
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        heads, size = num_attention_heads, self.head_size

        def projection(name):
            # [b, s, hidden] x [hidden, heads, head_size] -> [b, s, heads, head_size]
            return keras.layers.EinsumDense("bsh,hnd->bsnd", output_shape=(None, heads, size),
                                            bias_axes="nd",
                                            kernel_initializer=truncated_normal(initializer_range),
                                            name=name, dtype=self.dtype_policy)

        self.query = projection("query")
        self.key = projection("key")
        self.value = projection("value")
        # [b, s, heads, head_size] x [heads, head_size, hidden] -> [b, s, hidden]
        self.output_dense = keras.layers.EinsumDense(
            "bsnd,ndh->bsh", output_shape=(None, hidden_size), bias_axes="h",
            kernel_initializer=truncated_normal(initializer_range), name="output",
            dtype=self.dtype_policy)
        self.dropout = HashDropout(attention_dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        # The weights depend on the config alone, not on how many rows a call computes.
        rows = (None, None, self.hidden_size)
        self.query.build(rows)
        self.key.build(rows)
        self.value.build(rows)
        self.output_dense.build((None, None, self.num_attention_heads, self.head_size))

    def call(self, query, key, value, attention_bias=None, training=None,
             return_probabilities=False):
        """Projected heads → context: query [b, s_q, n, d], key/value [b, s_k, n, d], bias
        [b, 1, 1, s_k] → [b, s_q, n, d] (before the output projection). With
        `return_probabilities`, also the attention probabilities [b, n, s_q, s_k] float32 (before
        dropout: what the model attends with at inference)."""
        scale = 1.0 / math.sqrt(self.head_size)
        scores = ops.einsum("bqnd,bknd->bnqk", query, key)            # [b, n, s_q, s_k]
        scores = ops.cast(scores, "float32") * scale
        if attention_bias is not None:
            scores = scores + ops.cast(attention_bias, "float32")
        probabilities = ops.softmax(scores, axis=-1)                  # [b, n, s_q, s_k], float32
        probs = self.dropout(ops.cast(probabilities, self.compute_dtype), training=training)
        context = ops.einsum("bnqk,bknd->bqnd", probs, value)         # [b, s_q, n, d]
        return (context, probabilities) if return_probabilities else context

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "attention_dropout": self.attention_dropout,
                "initializer_range": self.initializer_range}
