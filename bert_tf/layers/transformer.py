"""The post-LN transformer block of BERT (Vaswani et al. layout, as in google-research/bert).

    x = LayerNorm(x + Dropout(SelfAttention(x)))
    x = LayerNorm(x + Dropout(Dense_out(act(Dense_in(x)))))
"""

import keras
from keras import ops

from bert_tf.layers.activations import get_activation
from bert_tf.layers.attention import BertSelfAttention
from bert_tf.layers.dropout import HashDropout
from bert_tf.layers.normalization import Float32LayerNorm


@keras.saving.register_keras_serializable(package="bert_tf")
class BertTransformerBlock(keras.layers.Layer):
    def __init__(self, hidden_size, num_attention_heads, intermediate_size, hidden_act="gelu",
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
        init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)

        self.attention = BertSelfAttention(hidden_size, num_attention_heads, attention_dropout,
                                           initializer_range, name="attention", dtype=policy)
        self.attention_dropout_layer = HashDropout(hidden_dropout, dtype=policy)
        self.attention_layer_norm = Float32LayerNorm(layer_norm_eps, name="attention_layer_norm",
                                                     dtype=policy)
        self.intermediate = keras.layers.Dense(intermediate_size, activation=get_activation(hidden_act),
                                               kernel_initializer=init(), name="intermediate",
                                               dtype=policy)
        self.output_dense = keras.layers.Dense(hidden_size, kernel_initializer=init(), name="output",
                                               dtype=policy)
        self.output_dropout = HashDropout(hidden_dropout, dtype=policy)
        self.output_layer_norm = Float32LayerNorm(layer_norm_eps, name="output_layer_norm", dtype=policy)

    def build(self, input_shape):
        self.attention.build(input_shape)
        self.attention_layer_norm.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_size,))
        self.output_layer_norm.build(input_shape)

    def call(self, hidden_states, attention_bias=None, training=None):
        # hidden_states: [b, s, hidden]; attention_bias: [b, 1, 1, s]
        attended = self.attention(hidden_states, attention_bias=attention_bias, training=training)
        return self.after_attention(hidden_states, attended, training=training)

    def at_positions(self, hidden_states, attention_bias=None, positions=None, training=None):
        """The block's output at some positions only: [b, s, hidden] → [b, p, hidden], equal to
        `self(hidden_states, attention_bias)` gathered at `positions` [b, p] (None: position 0,
        p = 1). Keys and values are projected for every position; queries, the attention output
        and the feed-forward run for the p rows, which is all the last layer owes a classifier's
        [CLS] head or the masked-LM/NSP heads (Model Garden's `output_range=1` for the first)."""
        attention = self.attention
        if positions is None:
            rows = hidden_states[:, :1]                                  # [b, 1, hidden]
        else:
            rows = ops.take_along_axis(hidden_states, ops.cast(positions, "int32")[:, :, None],
                                       axis=1)                           # [b, p, hidden]
        return self.rows_output(rows, attention.key(hidden_states), attention.value(hidden_states),
                                attention_bias, training=training)

    def rows_output(self, rows, key, value, attention_bias=None, training=None):
        """The block's output for query rows [b, p, hidden] attending to already projected keys
        and values [b, s, heads, head_size] → [b, p, hidden]. `at_positions` and
        `bert_tf.export.packing` (whose keys come from packed tokens) share it."""
        attention = self.attention
        context = attention.attend(attention.query(rows), key, value, attention_bias,
                                   training=training)                    # [b, p, heads, head_size]
        return self.after_attention(rows, attention.output_dense(context), training=training)

    def after_attention(self, hidden_states, attended, training=None):
        """Everything after self-attention, position by position: [..., hidden] (the block's input
        and the attention output) → [..., hidden]. `bert_tf.export.packing` runs it on packed
        tokens [n, hidden]."""
        attended = self.attention_dropout_layer(attended, training=training)
        hidden_states = self.attention_layer_norm(hidden_states + attended)
        intermediate = self.intermediate(hidden_states)               # [..., intermediate]
        ffn = self.output_dropout(self.output_dense(intermediate), training=training)
        return self.output_layer_norm(hidden_states + ffn)            # [..., hidden]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
                "hidden_dropout": self.hidden_dropout, "attention_dropout": self.attention_dropout,
                "initializer_range": self.initializer_range, "layer_norm_eps": self.layer_norm_eps}
