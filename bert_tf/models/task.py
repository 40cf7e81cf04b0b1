"""The common shape of every task model: a functional Keras model around a `BertEncoder`.

Subclasses declare their extra inputs and build their heads from the encoder's outputs; this base
does the functional wiring, fills BERT's optional inputs, serializes the encoder with the model, and
offers `from_pretrained` for every checkpoint format `bert_tf.weights` reads.
"""

from __future__ import annotations

import keras

from bert_tf.layers.dropout import HashDropout
from bert_tf.models.encoder import INPUT_NAMES, BertEncoder, as_int32, complete_inputs


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def dropout_dense_head(encoder: BertEncoder, units: int, dropout_rate: float, name: str):
    """(Dropout, Dense(units)) with BERT's truncated-normal initializer, in the encoder's dtype
    policy: the head google-research/bert puts on top of the encoder for every fine-tuning task."""
    policy = encoder.dtype_policy
    dropout = HashDropout(dropout_rate, dtype=policy)
    dense = keras.layers.Dense(units, name=name, dtype=policy,
                               kernel_initializer=keras.initializers.TruncatedNormal(
                                   stddev=encoder.config.initializer_range))
    return dropout, dense


class BertTaskModel(keras.Model):
    #: extra model inputs beyond BERT's three: name → (shape without batch, dtype)
    extra_inputs: dict = {}

    def __init__(self, encoder: BertEncoder, **kwargs):
        if not isinstance(encoder, BertEncoder):
            raise TypeError(f"{type(self).__name__} wraps a bert_tf.BertEncoder, got {type(encoder).__name__}")
        self.encoder = encoder
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        for name, (shape, dtype) in self.extra_inputs.items():
            inputs[name] = keras.Input(shape=shape, dtype=dtype, name=name)
        encoder_outputs = encoder({name: inputs[name] for name in INPUT_NAMES})
        outputs = self.build_heads(inputs, encoder_outputs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    def build_heads(self, inputs: dict, encoder_outputs: dict) -> dict:
        raise NotImplementedError

    def __call__(self, inputs, *args, **kwargs):
        extras = {k: as_int32(v) for k, v in inputs.items() if k in self.extra_inputs} if isinstance(inputs, dict) else {}
        bert_inputs = {k: v for k, v in inputs.items() if k not in self.extra_inputs} \
            if isinstance(inputs, dict) else inputs
        missing = sorted(set(self.extra_inputs) - set(extras))
        if missing:
            raise ValueError(f"{type(self).__name__} needs input(s) {missing}")
        return super().__call__({**complete_inputs(bert_inputs), **extras}, *args, **kwargs)

    def head_config(self) -> dict:
        return {}

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "encoder": keras.saving.serialize_keras_object(self.encoder), **self.head_config()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    @classmethod
    def from_pretrained(cls, path, *args, config=None, **kwargs):
        """The encoder from any checkpoint `bert_tf.weights` reads (HF, google, KerasHub, Model
        Garden, a bert_tf `.keras` of any task model); the head is freshly initialized."""
        from bert_tf.models.pretrained import load_encoder
        return cls(load_encoder(path, config=config), *args, **kwargs)
