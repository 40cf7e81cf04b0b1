"""BERT's heads: the [CLS] pooler, the masked-LM head tied to the word embeddings, and NSP."""

import keras
from keras import ops

from bert_tf.layers.activations import get_activation
from bert_tf.layers.initializers import truncated_normal
from bert_tf.layers.normalization import Float32LayerNorm


@keras.saving.register_keras_serializable(package="bert_tf")
class BertPooler(keras.layers.Layer):
    """tanh(Dense(rows[:, 0])): [b, s, h] → [b, h] (the first row is [CLS]; the rows may be the
    last layer's at some positions only, [CLS] first)."""

    def __init__(self, *, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(hidden_size, activation="tanh", name="dense",
                                        kernel_initializer=truncated_normal(initializer_range),
                                        dtype=self.dtype_policy)

    def build(self, input_shape):
        self.dense.build((input_shape[0], input_shape[-1]))

    def call(self, sequence_output):
        return self.dense(sequence_output[:, 0, :])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_size)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "initializer_range": self.initializer_range}


@keras.saving.register_keras_serializable(package="bert_tf")
class BertMaskedLMHead(keras.layers.Layer):
    """Masked-LM head: transform the masked positions' rows, project onto the (tied) word embeddings.

    Input: the last layer's rows at the masked positions [b, p, h] (the pre-training model has
    the last layer compute those rows only).
    Output: logits [b, p, vocab] in float32 (a softmax over 30k entries needs the range).
    The projection matrix is the encoder's `word_embeddings` variable itself (passed in, not copied),
    so gradients from the MLM loss flow into the embedding table as in BERT.
    """

    def __init__(self, embedding_layer, *, hidden_act="gelu", layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.embedding_layer = embedding_layer
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        hidden_size = embedding_layer.hidden_size
        self.transform = keras.layers.Dense(hidden_size, activation=get_activation(hidden_act),
                                            kernel_initializer=truncated_normal(initializer_range),
                                            name="transform", dtype=self.dtype_policy)
        self.layer_norm = Float32LayerNorm(epsilon=layer_norm_eps, name="layer_norm",
                                           dtype=self.dtype_policy)

    def build(self, input_shape=None):
        hidden = self.embedding_layer.hidden_size
        self.transform.build((None, None, hidden))
        self.layer_norm.build((None, None, hidden))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.embedding_layer.vocab_size,),
                                           initializer="zeros")

    def call(self, masked_rows):
        x = self.layer_norm(self.transform(masked_rows))                               # [b, p, h]
        table = ops.cast(self.embedding_layer.word_embeddings, x.dtype)                # [V, h]
        logits = ops.einsum("bph,vh->bpv", x, table)                                   # [b, p, V]
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, masked_rows_shape):
        return (masked_rows_shape[0], masked_rows_shape[1], self.embedding_layer.vocab_size)

    def get_config(self):
        # The embedding layer is shared with the encoder; the owning model re-links it on load.
        config = super().get_config()
        config.update(hidden_act=self.hidden_act, layer_norm_eps=self.layer_norm_eps,
                      initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="bert_tf")
class BertNSPHead(keras.layers.Layer):
    """Next-sentence prediction: Dense(2) on the pooled output → logits [b, 2] (label 1 = random next)."""

    def __init__(self, *, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(2, kernel_initializer=truncated_normal(initializer_range),
                                        name="dense", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, pooled_output):
        return ops.cast(self.dense(pooled_output), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)

    def get_config(self):
        return {**super().get_config(), "initializer_range": self.initializer_range}
