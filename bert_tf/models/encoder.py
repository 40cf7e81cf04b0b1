"""BertEncoder: the BERT transformer as a Keras 3 functional model.

Three parts, as in KerasHub's backbones: the layers, the functional graph, the config.
Inputs (dict, int32 [batch, seq]): `input_ids`, optional `token_type_ids` (default zeros) and
`attention_mask` (default ones). Outputs (dict): `sequence_output` [batch, seq, hidden],
`pooled_output` [batch, hidden], and with `output_hidden_states=True` also `hidden_states`, a list of
num_hidden_layers + 1 tensors [batch, seq, hidden] (the embeddings first, as in HF); with
`output_attentions=True` also `attentions` [layers, batch, heads, seq, seq], every layer's attention
probabilities (HF's `output_attentions`, stacked), float32.

`BertEncoder.encode` is the one forward pass of the transformer: this graph, the task models'
graphs (whose last layer may compute some rows only) and their export modes all run it.
"""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.config import BertConfig
from bert_tf.layers import (MASK_VALUE, BertEmbeddings, BertPooler, BertTransformerBlock,
                            attention_bias_from_mask)
from bert_tf.layers.packed import check_packing, pack

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def complete_inputs(inputs):
    """Accepts a dict (optional keys filled with BERT's defaults) or a bare `input_ids` tensor."""
    if not isinstance(inputs, dict):
        inputs = {"input_ids": inputs}
    if "input_ids" not in inputs:
        raise ValueError(f"BERT inputs need 'input_ids'; got keys {sorted(inputs)}")
    unknown = sorted(set(inputs) - set(INPUT_NAMES))
    if unknown:
        raise ValueError(f"Unknown BERT input(s) {unknown}; expected {list(INPUT_NAMES)}")
    input_ids = as_int32(inputs["input_ids"])
    completed = {"input_ids": input_ids}
    for name, default in (("token_type_ids", ops.zeros_like), ("attention_mask", ops.ones_like)):
        value = inputs.get(name)
        completed[name] = default(input_ids) if value is None else as_int32(value)
    return completed


def as_int32(x):
    # Keras rejects a dict mixing numpy arrays and tensors, and ids may arrive as int64.
    if isinstance(x, keras.KerasTensor):
        return x
    x = ops.convert_to_tensor(x)
    return x if x.dtype == "int32" else ops.cast(x, "int32")


@keras.saving.register_keras_serializable(package="bert_tf")
class BertEncoder(keras.Model):
    def __init__(self, config: BertConfig | dict, output_hidden_states: bool = False, dtype=None,
                 output_attentions: bool = False, **kwargs):
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        if not isinstance(config, BertConfig):
            raise TypeError(f"BertEncoder needs a BertConfig, got {type(config).__name__}")
        config.validate()

        # === Layers ===
        self.embeddings = BertEmbeddings(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size, initializer_range=config.initializer_range,
            layer_norm_eps=config.layer_norm_eps, dropout=config.hidden_dropout_prob,
            name="embeddings", dtype=dtype)
        self.transformer_layers = [
            BertTransformerBlock(
                hidden_size=config.hidden_size, num_attention_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size, hidden_act=config.hidden_act,
                hidden_dropout=config.hidden_dropout_prob,
                attention_dropout=config.attention_probs_dropout_prob,
                initializer_range=config.initializer_range, layer_norm_eps=config.layer_norm_eps,
                name=f"transformer_layer_{i}", dtype=dtype)
            for i in range(config.num_hidden_layers)
        ]
        self.pooler = BertPooler(hidden_size=config.hidden_size,
                                 initializer_range=config.initializer_range, name="pooler",
                                 dtype=dtype)

        # === Functional graph ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        hidden_states = self.encode(inputs, all_layers=True,     # num_hidden_layers + 1 × [b, s, h]
                                    return_attention=output_attentions)
        if output_attentions:
            hidden_states, attentions = hidden_states            # num_hidden_layers × [b, n, s, s]
        x = hidden_states[-1]
        outputs = {"sequence_output": x, "pooled_output": self.pooler(x)}
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        if output_attentions:
            outputs["attentions"] = ops.stack(attentions, axis=0)          # [layers, b, n, s, s]
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.config = config
        self.output_hidden_states = output_hidden_states
        self.output_attentions = output_attentions

    def call(self, inputs, training=None, mask=None):
        return super().call(complete_inputs(inputs), training=training, mask=mask)

    def __call__(self, inputs, *args, **kwargs):
        # Fill the optional inputs before Keras checks the structure against the three Inputs.
        return super().__call__(complete_inputs(inputs), *args, **kwargs)

    def encode(self, inputs: dict, *, query_positions=None, packing=None, mask_value=MASK_VALUE,
               training=None, all_layers: bool = False, return_attention: bool = False,
               word_vectors=None):
        """The transformer's forward pass: embeddings, then every block. The encoder's and the task
        models' functional graphs are built with it, and `BertTaskModel.forward` runs it.

        inputs: `input_ids` int [b, t], optional `token_type_ids` and `attention_mask`.
        query_positions [b, p]: the last layer computes those positions' rows only → [b, p, h]
          (None: every position → [b, t, h]). A [CLS] classifier skips, e.g., a fifth of the
          encoder's work at 4 layers and seq 128 this way, in training as in inference.
        packing `(positions, inverse)` (`bert_tf.layers.packed`): the blocks run on the batch's
          packed tokens → [n, h] (or [b, p, h] with query_positions, which must be packed ones).
        mask_value: the additive attention-mask value (BERT's -1e4 by default).
        Returns the last layer's rows, or with `all_layers` the embeddings' and every layer's;
        with `return_attention`, a pair (that, every layer's attention probabilities
        [b, heads, q, t] float32, q the layer's computed query rows).
        word_vectors [b, t, h]: the word embeddings to use instead of looking up `input_ids`
        (integrated gradients differentiate the model with respect to them).
        """
        inputs = complete_inputs(inputs)
        x = self.embeddings(inputs["input_ids"], inputs["token_type_ids"], training=training,
                            word_vectors=word_vectors)                           # [b, t, h]
        attention_bias = attention_bias_from_mask(inputs["attention_mask"], mask_value)  # [b,1,1,t]
        if packing is not None:
            x = pack(x, check_packing(packing)[0])                               # [n, h]
        states, attentions = [x], []
        last = len(self.transformer_layers) - 1
        for i, layer in enumerate(self.transformer_layers):
            x = layer(x, attention_bias=attention_bias,
                      query_positions=query_positions if i == last else None, packing=packing,
                      training=training, return_attention=return_attention)
            if return_attention:
                x, probabilities = x
                attentions.append(probabilities)
            states.append(x)
        result = states if all_layers else x
        return (result, attentions) if return_attention else result

    @property
    def token_embedding(self):
        """The word-embedding variable [vocab, hidden] (tied to the MLM output projection)."""
        return self.embeddings.word_embeddings

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict(),
                "output_hidden_states": self.output_hidden_states,
                "output_attentions": self.output_attentions,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)

    # --- weights in and out: read (bert_tf.weights) → build → assign, in bert_tf.models.pretrained
    # --- (imported here on use: it imports this module).
    @classmethod
    def from_pretrained(cls, path, config=None, **kwargs) -> "BertEncoder":
        """Loads an HF dir, a google-research/bert dir, a KerasHub preset dir, a Model Garden
        checkpoint or a bert_tf `.keras`; `config` overrides the checkpoint's."""
        from bert_tf.models.pretrained import load_encoder
        return load_encoder(path, config=config, **kwargs)

    def save_pretrained(self, directory) -> str:
        """Writes HF layout (config.json + model.safetensors) that `transformers.BertModel` loads."""
        from bert_tf.weights.huggingface import save_pretrained
        return save_pretrained(self, directory)
