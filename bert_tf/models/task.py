"""The common shape of every task model: a functional Keras model over a `BertEncoder`'s layers.

Subclasses declare their extra inputs, create their head layers, say which rows the last
transformer layer must compute for them, and map those rows to outputs; this base builds the
functional graph from that (the graph `summary()` shows is the graph that runs), fills BERT's
optional inputs, serializes the encoder with the model, offers `forward` for export's modes and
`from_pretrained` for every checkpoint format `bert_tf.weights` reads.
"""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.layers import MASK_VALUE, HashDropout, truncated_normal
from bert_tf.layers.packed import check_packing, unpack
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
                               kernel_initializer=truncated_normal(encoder.config.initializer_range))
    return dropout, dense


def cls_positions(input_ids):
    """[CLS]'s position, zeros [b, 1], as the last layer's `query_positions`."""
    return ops.zeros_like(input_ids[:, :1])


class BertTaskModel(keras.Model):
    #: extra model inputs beyond BERT's three: name → (shape without batch, dtype)
    extra_inputs: dict = {}
    #: the heads reduce over positions (sentence pooling): with packing they get every position's
    #: rows back as [b, t, h] (zeros where packing skipped) and their outputs are per input
    pools_positions: bool = False

    def __init__(self, encoder: BertEncoder, **kwargs):
        if not isinstance(encoder, BertEncoder):
            raise TypeError(f"{type(self).__name__} wraps a bert_tf.BertEncoder, got {type(encoder).__name__}")
        # === Layers ===
        self.encoder = encoder
        self.create_heads()
        # === Functional graph ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        for name, (shape, dtype) in self.extra_inputs.items():
            inputs[name] = keras.Input(shape=shape, dtype=dtype, name=name)
        outputs = self._task_forward(inputs, packing=None, mask_value=MASK_VALUE, training=None)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    # --- what a task model defines
    def create_heads(self) -> None:
        """Creates the head layers (as attributes)."""
        raise NotImplementedError

    def last_layer_positions(self, inputs: dict):
        """The positions [b, p] whose rows the heads read from the last layer (which then computes
        those rows only), or None for every position (per-token heads)."""
        return None

    def heads(self, inputs: dict, rows, training=None) -> dict:
        """The model's outputs from the last layer's rows: [b, p, h] at `last_layer_positions`, or
        with None every position's, [b, t, h] or packed [n, h] (per-token heads are row-wise)."""
        raise NotImplementedError

    # --- the forward pass
    def _task_forward(self, inputs, *, packing, mask_value, training, word_vectors=None):
        positions = self.last_layer_positions(inputs)
        rows = self.encoder.encode({name: inputs[name] for name in INPUT_NAMES},
                                   query_positions=positions, packing=packing,
                                   mask_value=mask_value, training=training,
                                   word_vectors=word_vectors)
        unpacked = packing is not None and positions is None
        batch, width = ops.shape(inputs["input_ids"])[0], ops.shape(inputs["input_ids"])[1]
        if unpacked and self.pools_positions:
            # Packed rows [n, h] → [b, t, h] for heads that pool over each input's positions.
            return self.heads(inputs, unpack(rows, packing[1], batch, width), training=training)
        outputs = self.heads(inputs, rows, training=training)
        if unpacked:
            # Per-token outputs of the packed rows [n, ...] → [b, t, ...], zeros at padding.
            outputs = {name: unpack(value, packing[1], batch, width)
                       for name, value in outputs.items()}
        return outputs

    def forward(self, inputs, *, packing=None, mask_value=None, training=False,
                word_vectors=None) -> dict:
        """The dict `self(inputs, training=training)` returns, from the same layers, with export's
        modes (for every task model):

        packing `(positions, inverse)` (`bert_tf.layers.packed.packing_index` of the attention
          mask): the transformer runs on the batch's attended tokens only; per-token outputs come
          back as [b, t, ...] with zeros at the positions packing skipped (mask 0, except
          position 0, which is always computed; the model's own values there are those of
          padding, which no caller reads). Positions the heads read (`last_layer_positions`,
          e.g. masked-LM positions) must be attended ones.
        mask_value: the additive attention-mask value instead of BERT's -10000 (TFLite's -100).
        word_vectors [b, t, h]: word embeddings instead of the table's rows of `input_ids`
          (integrated gradients; `bert_tf.explain`).
        Equal to `self(inputs)` up to float rounding (matrix products of other shapes sum in
        another order)."""
        if packing is not None:
            packing = check_packing(packing)
        return self._task_forward(self._complete_inputs(inputs), packing=packing,
                                  mask_value=MASK_VALUE if mask_value is None else mask_value,
                                  training=training, word_vectors=word_vectors)

    def forward_with_states(self, inputs, *, training=False, return_attention: bool = False):
        """One pass of the model that also hands out its encoder's per-layer states (a student's
        hidden-state and attention transfer, `bert_tf.tasks.distillation`):
        (outputs, states, attentions), where outputs is the dict `self(inputs, training=...)`
        returns, from the same layers and weights; states the embeddings' and every layer's rows
        [b, t, h] (num_hidden_layers + 1 of them, `BertEncoder.encode(all_layers=True)`); and
        attentions, with `return_attention`, every layer's attention probabilities
        [b, heads, t, t] float32 (else None).

        The last layer computes every row here, not only the `last_layer_positions` rows that
        `self(inputs)` computes (the transfer compares all positions); the heads read theirs from
        it, so the outputs are `self(inputs)`'s up to float rounding (dropout hashes other
        shapes, so with training=True it draws other masks in the last layer)."""
        inputs = self._complete_inputs(inputs)
        encoded = self.encoder.encode({name: inputs[name] for name in INPUT_NAMES},
                                      training=training, all_layers=True,
                                      return_attention=return_attention)
        states, attentions = encoded if return_attention else (encoded, None)
        positions = self.last_layer_positions(inputs)
        rows = states[-1]                                                           # [b, t, h]
        if positions is not None:
            rows = ops.take_along_axis(rows, ops.cast(positions, "int32")[:, :, None],
                                       axis=1)                                      # [b, p, h]
        return self.heads(inputs, rows, training=training), states, attentions

    def _complete_inputs(self, inputs) -> dict:
        extras = {k: as_int32(v) for k, v in inputs.items() if k in self.extra_inputs} \
            if isinstance(inputs, dict) else {}
        bert_inputs = {k: v for k, v in inputs.items() if k not in self.extra_inputs} \
            if isinstance(inputs, dict) else inputs
        missing = sorted(set(self.extra_inputs) - set(extras))
        if missing:
            raise ValueError(f"{type(self).__name__} needs input(s) {missing}")
        return {**complete_inputs(bert_inputs), **extras}

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._complete_inputs(inputs), *args, **kwargs)

    @property
    def layers(self):
        """The inputs, the encoder (as one layer) and the heads. The graph calls the encoder's
        layers one by one (the last one computes some rows only), but `.keras` files keep the
        encoder as one unit, as they did when the graph called the whole encoder: files saved
        either way load either way."""
        graph_layers = super().layers
        encoder_layers = {id(layer) for layer in self.encoder.layers}
        inputs = [layer for layer in graph_layers if isinstance(layer, keras.layers.InputLayer)]
        heads = [layer for layer in graph_layers
                 if id(layer) not in encoder_layers and layer not in inputs]
        return inputs + [self.encoder] + heads

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
