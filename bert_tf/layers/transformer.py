"""The post-LN transformer block of BERT (Vaswani et al. layout, as in google-research/bert).

    x = LayerNorm(x + Dropout(SelfAttention(x)))
    x = LayerNorm(x + Dropout(Dense_out(act(Dense_in(x)))))

Which rows a call computes is an argument (Model Garden's `output_range`, generalized):

    every position (default)      hidden_states [b, t, h]                          → [b, t, h]
    query_positions [b, p]        hidden_states [b, t, h]                          → [b, p, h]
    packing=(positions, inverse)  hidden_states [n, h], the packed attended tokens → [n, h]
      and query_positions [b, p]                                                   → [b, p, h]

Keys and values always come from every (attended) position; queries, the attention output and
the feed-forward run for the computed rows only. That is all the last layer owes a classifier's
[CLS] head ([CLS] is `query_positions` zeros [b, 1]) or the masked-LM/NSP heads, and the rows
equal those of the full computation up to float rounding (with dropout on, masks are drawn for the
computed rows only).

Packed tokens (see `bert_tf.layers.packed`): after trimming, a batch is still about half padding,
and a row's real tokens never depend on its padding. Every position-wise layer (the Q/K/V and
output projections, the feed-forward, LayerNorm) runs on the n packed rows; only attention itself
needs [b, t] rows, so keys and values (and queries, unless `query_positions` picks some packed
rows) are scattered back to [b, t, heads, head_size], a zero row at padding, which the attention
bias masks out exactly as before.
"""

import keras
from keras import ops

from bert_tf.layers.activations import get_activation
from bert_tf.layers.attention import BertSelfAttention
from bert_tf.layers.dropout import HashDropout
from bert_tf.layers.initializers import truncated_normal
from bert_tf.layers.normalization import Float32LayerNorm
from bert_tf.layers.packed import check_packing, pack, packed_rows, unpack


@keras.saving.register_keras_serializable(package="bert_tf")
class BertTransformerBlock(keras.layers.Layer):
    def __init__(self, *, hidden_size, num_attention_heads, intermediate_size, hidden_act="gelu",
                 hidden_dropout=0.1, attention_dropout=0.1, initializer_range=0.02,
                 layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        policy = self.dtype_policy

        self.attention = BertSelfAttention(
            hidden_size=hidden_size, num_attention_heads=num_attention_heads,
            attention_dropout=attention_dropout, initializer_range=initializer_range,
            name="attention", dtype=policy)
        self.attention_dropout_layer = HashDropout(hidden_dropout, dtype=policy)
        self.attention_layer_norm = Float32LayerNorm(epsilon=layer_norm_eps,
                                                     name="attention_layer_norm", dtype=policy)
        self.intermediate = keras.layers.Dense(
            intermediate_size, activation=get_activation(hidden_act),
            kernel_initializer=truncated_normal(initializer_range), name="intermediate",
            dtype=policy)
        self.output_dense = keras.layers.Dense(
            hidden_size, kernel_initializer=truncated_normal(initializer_range), name="output",
            dtype=policy)
        self.output_dropout = HashDropout(hidden_dropout, dtype=policy)
        self.output_layer_norm = Float32LayerNorm(epsilon=layer_norm_eps,
                                                  name="output_layer_norm", dtype=policy)

    def build(self, input_shape=None):
        # The weights depend on the config alone, not on which rows a call computes.
        rows = (None, None, self.hidden_size)
        self.attention.build()
        self.attention_layer_norm.build(rows)
        self.intermediate.build(rows)
        self.output_dense.build((None, None, self.intermediate_size))
        self.output_layer_norm.build(rows)

    def call(self, hidden_states, attention_bias=None, query_positions=None, packing=None,
             training=None, return_attention=False):
        """See the module docstring for the shapes of each mode. attention_bias: [b, 1, 1, t]
        float (0 where attended; needed with `packing`, which takes b and t from it);
        query_positions: int [b, p] columns; packing: `(positions [n], inverse [b * t])`.
        return_attention: also return the attention probabilities [b, heads, q, t] float32 of
        the computed query rows (q = t, or p with `query_positions`)."""
        attention = self.attention
        probabilities = None
        if packing is None:
            tokens = hidden_states                                              # [b, t, h]
            key, value = attention.key(tokens), attention.value(tokens)         # [b, t, N, d]
            if query_positions is None:
                rows = tokens                                                   # [b, t, h]
            else:
                rows = ops.take_along_axis(
                    tokens, ops.cast(query_positions, "int32")[:, :, None], axis=1)  # [b, p, h]
            context = attention(attention.query(rows), key, value, attention_bias,
                                training=training,
                                return_probabilities=return_attention)          # [b, q, N, d]
            if return_attention:
                context, probabilities = context                                # [b, N, q, t]
            attended = attention.output_dense(context)                          # [b, q, h]
        else:
            positions, inverse = check_packing(packing)
            if attention_bias is None:
                raise ValueError("a packed call needs the attention_bias [b, 1, 1, t] of the batch")
            batch, width = ops.shape(attention_bias)[0], ops.shape(attention_bias)[3]
            tokens = hidden_states[None]                                        # [1, n, h]

            def scattered(projection):   # [n, h] → [b, t, N, d], zeros where not packed
                return unpack(projection(tokens)[0], inverse, batch, width)

            key, value = scattered(attention.key), scattered(attention.value)
            if query_positions is None:
                rows = hidden_states                                            # [n, h]
                context = attention(scattered(attention.query), key, value, attention_bias,
                                    training=training,
                                    return_probabilities=return_attention)      # [b, t, N, d]
                if return_attention:
                    context, probabilities = context                            # [b, N, t, t]
                context = pack(context, positions)[None]                        # [1, n, N, d]
                attended = attention.output_dense(context)[0]                   # [n, h]
            else:
                rows = ops.take(hidden_states, packed_rows(inverse, query_positions, width),
                                axis=0)                                         # [b, p, h]
                context = attention(attention.query(rows), key, value, attention_bias,
                                    training=training,
                                    return_probabilities=return_attention)      # [b, p, N, d]
                if return_attention:
                    context, probabilities = context                            # [b, N, p, t]
                attended = attention.output_dense(context)                      # [b, p, h]
        output = self._add_and_feed_forward(rows, attended, training)
        return (output, probabilities) if return_attention else output

    def _add_and_feed_forward(self, rows, attended, training):
        """Everything after self-attention, row by row: the block's input rows and their attention
        output [..., hidden] → [..., hidden]."""
        attended = self.attention_dropout_layer(attended, training=training)
        rows = self.attention_layer_norm(rows + attended)
        intermediate = self.intermediate(rows)                                  # [..., intermediate]
        ffn = self.output_dropout(self.output_dense(intermediate), training=training)
        return self.output_layer_norm(rows + ffn)                               # [..., hidden]

    def compute_output_spec(self, hidden_states, attention_bias=None, query_positions=None,
                            packing=None, training=None, return_attention=False):
        # Every computed row is `hidden_size` wide: [b, t, h] / [n, h], or [b, p, h] for queries.
        if query_positions is None:
            shape = tuple(hidden_states.shape)
        else:
            shape = tuple(query_positions.shape[:2]) + (self.hidden_size,)
        output = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not return_attention:
            return output
        keys = tuple(attention_bias.shape)[3] if attention_bias is not None else None
        batch = shape[0] if packing is None else tuple(attention_bias.shape)[0]
        queries = keys if query_positions is None else shape[1]
        return output, keras.KerasTensor((batch, self.num_attention_heads, queries, keys),
                                         dtype="float32")

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
                "hidden_dropout": self.hidden_dropout, "attention_dropout": self.attention_dropout,
                "initializer_range": self.initializer_range, "layer_norm_eps": self.layer_norm_eps}
