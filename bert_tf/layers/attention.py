"""Multi-head self-attention laid out like BERT's checkpoints.

Query/key/value kernels are [hidden, heads, head_size] and the output kernel [heads, head_size, hidden]:
a google-research/bert `query/kernel` [hidden, hidden] is exactly this tensor reshaped, and HF's
`query.weight` [hidden, hidden] is its transpose reshaped, so weights map 1:1 without re-ordering.
"""

import math

import keras
from keras import ops

from bert_tf.layers.dropout import HashDropout

# BERT's own additive mask value (google-research/bert modeling.py: `(1.0 - mask) * -10000.0`).
# exp(-10000) underflows to exactly 0 in float32, and -1e4 is finite in float16 (max 65504) and
# bfloat16, and small enough in magnitude to keep int8 calibration ranges sane in TFLite.
MASK_VALUE = -10000.0


def attention_bias_from_mask(attention_mask, dtype="float32"):
    """[batch, seq] 1/0 mask → additive bias [batch, 1, 1, seq]: 0 where attended, -1e4 where padding."""
    mask = ops.cast(attention_mask, dtype)
    return (1.0 - mask)[:, None, None, :] * MASK_VALUE


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSelfAttention(keras.layers.Layer):
    """Scaled dot-product self-attention with BERT's projection layout, plus the output projection.

    Softmax runs in float32 under mixed precision; dropout is applied to the attention probabilities
    as in BERT.
    """

    def __init__(self, hidden_size, num_attention_heads, attention_dropout=0.1,
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
        init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)
        heads, size = num_attention_heads, self.head_size

        def projection(name):
            # [b, s, hidden] x [hidden, heads, head_size] -> [b, s, heads, head_size]
            return keras.layers.EinsumDense("bsh,hnd->bsnd", output_shape=(None, heads, size),
                                            bias_axes="nd", kernel_initializer=init(), name=name,
                                            dtype=self.dtype_policy)

        self.query = projection("query")
        self.key = projection("key")
        self.value = projection("value")
        # [b, s, heads, head_size] x [heads, head_size, hidden] -> [b, s, hidden]
        self.output_dense = keras.layers.EinsumDense("bsnd,ndh->bsh", output_shape=(None, hidden_size),
                                                     bias_axes="h", kernel_initializer=init(),
                                                     name="output", dtype=self.dtype_policy)
        self.dropout = HashDropout(attention_dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.query.build(input_shape)
        self.key.build(input_shape)
        self.value.build(input_shape)
        self.output_dense.build(tuple(input_shape[:2]) + (self.num_attention_heads, self.head_size))

    def call(self, hidden_states, attention_bias=None, training=None):
        # hidden_states: [b, s, hidden]; attention_bias: [b, 1, 1, s] float32 (0 or MASK_VALUE)
        query = self.query(hidden_states)          # [b, s, n, d]
        key = self.key(hidden_states)              # [b, s, n, d]
        value = self.value(hidden_states)          # [b, s, n, d]
        context = self.attend(query, key, value, attention_bias, training=training)
        return self.output_dense(context)          # [b, s, hidden]

    def attend(self, query, key, value, attention_bias=None, training=None):
        """Projected heads → context: query [b, s_q, n, d], key/value [b, s_k, n, d], bias
        [b, 1, 1, s_k] → [b, s_q, n, d]. Its own method so that `bert_tf.export.packing` (queries
        for a subset of positions) runs the same math."""
        scale = 1.0 / math.sqrt(self.head_size)
        scores = ops.einsum("bqnd,bknd->bnqk", query, key)            # [b, n, s_q, s_k]
        scores = ops.cast(scores, "float32") * scale
        if attention_bias is not None:
            scores = scores + ops.cast(attention_bias, "float32")
        probs = ops.softmax(scores, axis=-1)                          # [b, n, s_q, s_k], float32
        probs = self.dropout(ops.cast(probs, self.compute_dtype), training=training)
        return ops.einsum("bnqk,bknd->bqnd", probs, value)            # [b, s_q, n, d]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "attention_dropout": self.attention_dropout,
                "initializer_range": self.initializer_range}
