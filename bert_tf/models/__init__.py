"""BERT models: the encoder and the task models that wrap it."""

from bert_tf.models.encoder import BertEncoder

__all__ = ["BertEncoder"]
