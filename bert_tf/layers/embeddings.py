"""BERT's input embeddings: word + absolute position + token type, then LayerNorm and dropout."""

import keras
from keras import ops

from bert_tf.layers.dropout import HashDropout
from bert_tf.layers.initializers import truncated_normal
from bert_tf.layers.normalization import Float32LayerNorm


@keras.saving.register_keras_serializable(package="bert_tf")
class BertEmbeddings(keras.layers.Layer):
    """Inputs `input_ids`, `token_type_ids` [batch, seq] int → [batch, seq, hidden].

    The word table is exposed as `word_embeddings` so the MLM head can tie its output projection to it.
    """

    def __init__(self, *, vocab_size, hidden_size, max_position_embeddings=512, type_vocab_size=2,
                 initializer_range=0.02, layer_norm_eps=1e-12, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout
        self.layer_norm = Float32LayerNorm(epsilon=layer_norm_eps, name="layer_norm",
                                           dtype=self.dtype_policy)
        self.dropout = HashDropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        init = truncated_normal(self.initializer_range)
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(self.vocab_size, self.hidden_size), initializer=init)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_position_embeddings, self.hidden_size),
            initializer=init)
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(self.type_vocab_size, self.hidden_size),
            initializer=init)
        self.layer_norm.build((None, None, self.hidden_size))

    def call(self, input_ids, token_type_ids, training=None, word_vectors=None):
        """input_ids, token_type_ids: [b, s]. word_vectors [b, s, h]: used instead of the word
        table's rows of `input_ids` (attributions interpolate them; positions and types stay)."""
        seq_length = ops.shape(input_ids)[1]
        words = ops.take(self.word_embeddings, input_ids, axis=0) if word_vectors is None \
            else ops.cast(word_vectors, self.compute_dtype)                        # [b, s, h]
        positions = ops.take(self.position_embeddings, ops.arange(seq_length), axis=0)  # [s, h]
        types = ops.take(self.token_type_embeddings, token_type_ids, axis=0)       # [b, s, h]
        embeddings = words + positions[None, :, :] + types
        return self.dropout(self.layer_norm(embeddings), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_size,)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "max_position_embeddings": self.max_position_embeddings,
                "type_vocab_size": self.type_vocab_size, "initializer_range": self.initializer_range,
                "layer_norm_eps": self.layer_norm_eps, "dropout": self.dropout_rate}
