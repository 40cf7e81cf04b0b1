"""Keras 3 layers of BERT, written with `keras.ops` only (they run on the TF and JAX backends)."""

from bert_tf.layers.activations import gelu_exact, gelu_tanh, get_activation
from bert_tf.layers.attention import MASK_VALUE, BertSelfAttention, attention_bias_from_mask
from bert_tf.layers.dropout import HashDropout, reseed_dropout
from bert_tf.layers.embeddings import BertEmbeddings
from bert_tf.layers.heads import BertMaskedLMHead, BertNSPHead, BertPooler
from bert_tf.layers.initializers import truncated_normal
from bert_tf.layers.normalization import Float32LayerNorm
from bert_tf.layers.transformer import BertTransformerBlock

__all__ = ["BertEmbeddings", "BertSelfAttention", "BertTransformerBlock", "BertPooler",
           "BertMaskedLMHead", "BertNSPHead", "Float32LayerNorm", "HashDropout", "MASK_VALUE",
           "attention_bias_from_mask", "gelu_exact", "gelu_tanh", "get_activation", "reseed_dropout",
           "truncated_normal"]
