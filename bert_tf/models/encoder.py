"""BertEncoder: the BERT transformer as a Keras 3 functional model.

Three parts, as in KerasHub's backbones: the layers, the functional graph, the config.
Inputs (dict, int32 [batch, seq]): `input_ids`, optional `token_type_ids` (default zeros) and
`attention_mask` (default ones). Outputs (dict): `sequence_output` [batch, seq, hidden],
`pooled_output` [batch, hidden], and with `output_hidden_states=True` also `hidden_states`, a list of
num_hidden_layers + 1 tensors [batch, seq, hidden] (the embeddings first, as in HF).
"""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.config import BertConfig
from bert_tf.layers import BertEmbeddings, BertPooler, BertTransformerBlock, attention_bias_from_mask

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
                 **kwargs):
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        if not isinstance(config, BertConfig):
            raise TypeError(f"BertEncoder needs a BertConfig, got {type(config).__name__}")
        config.validate()

        # === Layers ===
        self.embeddings = BertEmbeddings(
            config.vocab_size, config.hidden_size, config.max_position_embeddings,
            config.type_vocab_size, config.initializer_range, config.layer_norm_eps,
            config.hidden_dropout_prob, name="embeddings", dtype=dtype)
        self.transformer_layers = [
            BertTransformerBlock(config.hidden_size, config.num_attention_heads,
                                 config.intermediate_size, config.hidden_act,
                                 config.hidden_dropout_prob, config.attention_probs_dropout_prob,
                                 config.initializer_range, config.layer_norm_eps,
                                 name=f"transformer_layer_{i}", dtype=dtype)
            for i in range(config.num_hidden_layers)
        ]
        self.pooler = BertPooler(config.hidden_size, config.initializer_range, name="pooler", dtype=dtype)

        # === Functional graph ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        x = self.embeddings(inputs["input_ids"], inputs["token_type_ids"])     # [b, s, h]
        attention_bias = attention_bias_from_mask(inputs["attention_mask"])     # [b, 1, 1, s]
        hidden_states = [x]
        for layer in self.transformer_layers:
            x = layer(x, attention_bias=attention_bias)
            hidden_states.append(x)
        outputs = {"sequence_output": x, "pooled_output": self.pooler(x)}
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.config = config
        self.output_hidden_states = output_hidden_states

    def call(self, inputs, training=None, mask=None):
        return super().call(complete_inputs(inputs), training=training, mask=mask)

    def __call__(self, inputs, *args, **kwargs):
        # Fill the optional inputs before Keras checks the structure against the three Inputs.
        return super().__call__(complete_inputs(inputs), *args, **kwargs)

    def outputs_at(self, inputs, positions=None, training=None):
        """`self(inputs)["sequence_output"]` at `positions` [b, p] only (None: position 0) →
        [b, p, hidden]: the last layer runs queries and the feed-forward for those rows alone
        (`BertTransformerBlock.at_positions`). A [CLS] classifier skips, e.g., a fifth of the
        encoder's work at 4 layers and seq 128 this way, in training as in inference; pre-training
        needs [CLS] and the masked positions. Equal to the full model up to float rounding (with
        dropout on, the last layer draws masks for the computed rows only)."""
        inputs = complete_inputs(inputs)
        x = self.embeddings(inputs["input_ids"], inputs["token_type_ids"],
                            training=training)                           # [b, s, h]
        attention_bias = attention_bias_from_mask(inputs["attention_mask"])   # [b, 1, 1, s]
        for layer in self.transformer_layers[:-1]:
            x = layer(x, attention_bias=attention_bias, training=training)
        return self.transformer_layers[-1].at_positions(x, attention_bias, positions,
                                                        training=training)

    def pooled_output(self, inputs, training=None):
        """`self(inputs)["pooled_output"]` [b, hidden], the last layer run for [CLS] only."""
        return self.pooler(self.outputs_at(inputs, training=training))

    @property
    def token_embedding(self):
        """The word-embedding variable [vocab, hidden] (tied to the MLM output projection)."""
        return self.embeddings.word_embeddings

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict(),
                "output_hidden_states": self.output_hidden_states,
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
