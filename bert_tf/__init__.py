"""bert_tf: BERT on TensorFlow / Keras 3 — encoder, heads, tokenizer, pre-training, fine-tuning, export."""

__version__ = "0.1.0"

from bert_tf.config import BertConfig, ConfigError
from bert_tf.models.encoder import BertEncoder

__all__ = ["BertConfig", "ConfigError", "BertEncoder", "__version__"]
