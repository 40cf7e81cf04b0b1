"""bert_tf: BERT on TensorFlow / Keras 3 — encoder, heads, tokenizer, pre-training, fine-tuning, export.

The model side (`BertConfig`, layers, models) imports only Keras, so it also runs on the JAX backend
where TensorFlow is absent; TensorFlow-bound parts (`BertTokenizer`, `bert_tf.export`, ...) load on
first use.
"""

import importlib

__version__ = "0.1.0"

from bert_tf.config import BertConfig, ConfigError

# Loaded on first attribute access: name → module that defines it. The models load lazily too, so
# that importing a lower package (`bert_tf.weights`, `bert_tf.text`, ...) does not import them.
_LAZY = {
    "BertTokenizer": "bert_tf.text",
    **{name: "bert_tf.models" for name in ("BertEncoder", "BertPretrainer", "BertClassifier",
                                          "BertTokenClassifier", "BertSpanLabeler",
                                          "BertSentenceEncoder")},
}
_LAZY_MODULES = ("layers", "models", "text", "data", "weights", "training", "tasks", "export",
                 "metrics")


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"bert_tf.{name}")
    raise AttributeError(f"module 'bert_tf' has no attribute {name!r}")


__all__ = ["BertConfig", "ConfigError", "BertEncoder", "BertPretrainer", "BertClassifier",
           "BertTokenClassifier", "BertSpanLabeler", "BertSentenceEncoder", "BertTokenizer", "__version__"]
