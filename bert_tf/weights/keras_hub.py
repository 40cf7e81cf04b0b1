"""KerasHub `BertBackbone` weights: preset directories and live backbones, in and out.

A KerasHub preset (`BertBackbone.save_to_preset(dir)`) is `config.json` (module
"keras_hub.src.models.bert.bert_backbone", registered_name "keras_hub>BertBackbone") +
`model.weights.h5` + `metadata.json`. The h5 file names variables by auto-generated layer class
names, so we do not parse it: KerasHub itself rebuilds the backbone, and we map its variables by
the backbone's structure:

    token_embedding.embeddings                          → bert/embeddings/word_embeddings
    position_embedding.position_embeddings              → bert/embeddings/position_embeddings
    segment_embedding.embeddings                        → bert/embeddings/token_type_embeddings
    embeddings_layer_norm.{gamma,beta}                  → bert/embeddings/LayerNorm/{gamma,beta}
    transformer_layer_i._self_attention_layer
        .{query,key,value}_dense  kernel [h, n, d], bias [n, d]  → layer_i/attention/self/* [h, h], [h]
        .output_dense             kernel [n, d, h]               → layer_i/attention/output/dense [h, h]
    transformer_layer_i._self_attention_layer_norm      → layer_i/attention/output/LayerNorm
    transformer_layer_i._feedforward_intermediate_dense → layer_i/intermediate/dense
    transformer_layer_i._feedforward_output_dense       → layer_i/output/dense
    transformer_layer_i._feedforward_layer_norm         → layer_i/output/LayerNorm
    pooled_dense                                        → bert/pooler/dense

Fixed choices of KerasHub's BertBackbone (0.32), and how they map:
- activation: always the tanh approximation of gelu (`gelu_approximate`), so a preset loads as
  `hidden_act="gelu_tanh"`; converting an encoder with exact "gelu" or "relu" *out* is refused.
- LayerNorm epsilon: always 1e-12 (other values are refused on the way out).
- one `dropout` for hidden and attention dropout: loaded into both; on the way out
  `hidden_dropout_prob` is used (dropout does not change weights or inference outputs).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from bert_tf import fileio
from bert_tf.atomic import staged_directory
from bert_tf.config import BertConfig
from bert_tf.weights.canonical import (CanonicalTensors, WeightsError, assign, collect,
                                       encoder_slots, read_json)

logger = logging.getLogger(__name__)

KERAS_HUB_ACTIVATIONS = ("gelu_tanh", "gelu_new", "gelu_pytorch_tanh")


def _import_keras_hub():
    try:
        import keras_hub
    except ImportError:
        raise WeightsError("KerasHub presets need the keras-hub package (pip install "
                           "'bert_tf[hub]')") from None
    return keras_hub


def _is_bert_backbone(obj) -> bool:
    return any(cls.__name__ == "BertBackbone" and cls.__module__.startswith("keras_hub")
               for cls in type(obj).__mro__)


# ----------------------------------------------------------------------------- variable mapping
def _variables(backbone) -> dict:
    """Canonical name → the backbone's keras.Variable (in KerasHub's layout)."""
    variables = {
        "bert/embeddings/word_embeddings": backbone.get_layer("token_embedding").embeddings,
        "bert/embeddings/position_embeddings":
            backbone.get_layer("position_embedding").position_embeddings,
        "bert/embeddings/token_type_embeddings": backbone.get_layer("segment_embedding").embeddings,
        "bert/embeddings/LayerNorm/gamma": backbone.get_layer("embeddings_layer_norm").gamma,
        "bert/embeddings/LayerNorm/beta": backbone.get_layer("embeddings_layer_norm").beta,
    }
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"transformer_layer_{i}")
        attention = block._self_attention_layer
        prefix = f"bert/encoder/layer_{i}"
        parts = {
            "attention/self/query": attention.query_dense,
            "attention/self/key": attention.key_dense,
            "attention/self/value": attention.value_dense,
            "attention/output/dense": attention.output_dense,
            "intermediate/dense": block._feedforward_intermediate_dense,
            "output/dense": block._feedforward_output_dense,
        }
        for name, dense in parts.items():
            variables[f"{prefix}/{name}/kernel"] = dense.kernel
            variables[f"{prefix}/{name}/bias"] = dense.bias
        for name, norm in (("attention/output/LayerNorm", block._self_attention_layer_norm),
                           ("output/LayerNorm", block._feedforward_layer_norm)):
            variables[f"{prefix}/{name}/gamma"] = norm.gamma
            variables[f"{prefix}/{name}/beta"] = norm.beta
    pooled = backbone.get_layer("pooled_dense")
    variables["bert/pooler/dense/kernel"] = pooled.kernel
    variables["bert/pooler/dense/bias"] = pooled.bias
    return variables


def _to_canonical_layout(name: str, value: np.ndarray) -> np.ndarray:
    """Merges KerasHub's per-head axes into google's 2-D kernels / 1-D biases."""
    if "/attention/self/" in name:
        # kernel [hidden, heads, head_size] → [hidden, hidden]; bias [heads, head_size] → [hidden]
        return value.reshape(value.shape[0], -1) if name.endswith("kernel") else value.reshape(-1)
    if "/attention/output/dense/kernel" in name:
        return value.reshape(-1, value.shape[-1])           # [heads, head_size, hidden] → [hidden, hidden]
    return value


def keras_hub_to_canonical(backbone) -> CanonicalTensors:
    """Canonical tensors of a live BertBackbone. Variables the mapping does not know are kept under
    their KerasHub path, so the strict assignment reports them as unused."""
    variables = _variables(backbone)
    # origin: errors name each tensor by its KerasHub variable path too
    tensors = CanonicalTensors(
        {name: _to_canonical_layout(name, np.asarray(v.numpy(), dtype=np.float32))
         for name, v in variables.items()},
        origin={name: v.path for name, v in variables.items()})
    mapped = {id(v) for v in variables.values()}
    for v in backbone.weights:
        if id(v) not in mapped:
            tensors[v.path] = np.asarray(v.numpy())
    return tensors


def keras_hub_config(backbone) -> BertConfig:
    return BertConfig(
        vocab_size=backbone.vocabulary_size, hidden_size=backbone.hidden_dim,
        num_hidden_layers=backbone.num_layers, num_attention_heads=backbone.num_heads,
        intermediate_size=backbone.intermediate_dim, hidden_act="gelu_tanh",
        hidden_dropout_prob=backbone.dropout, attention_probs_dropout_prob=backbone.dropout,
        max_position_embeddings=backbone.max_sequence_length, type_vocab_size=backbone.num_segments,
        layer_norm_eps=1e-12)


# ----------------------------------------------------------------------------- in
def load_keras_hub_preset(directory: str):
    """(BertConfig, canonical tensors) from a KerasHub BertBackbone preset directory."""
    directory = os.fspath(directory)
    config_path = os.path.join(directory, "config.json")
    try:
        with fileio.open(config_path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"{config_path}: cannot read a KerasHub preset config ({e})") from None
    class_name = data.get("class_name") if isinstance(data, dict) else None
    if class_name != "BertBackbone":
        raise WeightsError(f"{config_path}: a KerasHub {class_name!r} preset; only BertBackbone "
                           "presets hold BERT weights")
    keras_hub = _import_keras_hub()
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(directory)
    except Exception as e:  # KerasHub raises ValueError/OSError/h5py errors for damaged presets
        raise WeightsError(f"{directory}: KerasHub could not load the preset: {e}") from None
    return keras_hub_config(backbone), keras_hub_to_canonical(backbone)


def read_keras_hub_backbone(backbone):
    """(BertConfig, canonical tensors) of a live `keras_hub.models.BertBackbone`."""
    if not _is_bert_backbone(backbone):
        raise WeightsError(f"expected a keras_hub.models.BertBackbone, got {type(backbone).__name__}")
    return keras_hub_config(backbone), keras_hub_to_canonical(backbone)


def from_keras_hub_backbone(backbone, encoder_class, **encoder_kwargs):
    """An `encoder_class` (`bert_tf.models.BertEncoder`, passed in: this package does not import
    the models) built for `backbone`'s config and computing what the backbone computes."""
    config, tensors = read_keras_hub_backbone(backbone)
    encoder = encoder_class(config, **encoder_kwargs)
    assign(encoder_slots(encoder), tensors, source="KerasHub BertBackbone")
    return encoder


# ----------------------------------------------------------------------------- out
def to_keras_hub_backbone(encoder):
    """A `keras_hub.models.BertBackbone` with the encoder's weights (refuses what KerasHub can't run)."""
    config = encoder.config
    problems = []
    if config.hidden_act not in KERAS_HUB_ACTIVATIONS:
        problems.append(f"hidden_act is {config.hidden_act!r} but KerasHub's BertBackbone always uses "
                        "the tanh approximation of gelu")
    if config.layer_norm_eps != 1e-12:
        problems.append(f"layer_norm_eps is {config.layer_norm_eps} but KerasHub's BertBackbone "
                        "always uses 1e-12")
    if problems:
        raise WeightsError("Cannot convert to a KerasHub BertBackbone: " + "; ".join(problems))
    if config.attention_probs_dropout_prob != config.hidden_dropout_prob:
        logger.warning("KerasHub's BertBackbone has one dropout rate; using hidden_dropout_prob=%s "
                       "(attention_probs_dropout_prob=%s is dropped)", config.hidden_dropout_prob,
                       config.attention_probs_dropout_prob)
    keras_hub = _import_keras_hub()
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings, num_segments=config.type_vocab_size)
    tensors = collect(encoder_slots(encoder))
    for name, variable in _variables(backbone).items():
        variable.assign(np.reshape(tensors[name], tuple(variable.shape)).astype(variable.dtype))
    return backbone


def save_keras_hub_preset(encoder, directory: str) -> str:
    """Writes a KerasHub preset (`BertBackbone.from_preset(directory)` loads it). A new directory
    appears by one rename; files of an existing one are replaced one by one, weights first."""
    directory = os.fspath(directory)
    backbone = to_keras_hub_backbone(encoder)
    with staged_directory(directory, lambda n: (n == "config.json", n)) as staging:
        backbone.save_to_preset(staging)
    return directory


# ----------------------------------------------------------------------------- classifiers
CLASSIFIER = "BertTextClassifier"


def read_preset_class(directory: str) -> str | None:
    """The class name of a KerasHub task preset's task.json (None without one)."""
    path = os.path.join(os.fspath(directory), "task.json")
    if not fileio.isfile(path):
        return None
    return read_json(path, "a KerasHub task config", dict).get("class_name")


def load_keras_hub_classifier(directory: str) -> dict:
    """A KerasHub `BertTextClassifier` preset (`classifier.save_to_preset(dir)`): its encoder and
    head as canonical tensors (the head's Dense [hidden, classes] as google's output_weights
    [classes, hidden]) and what its preprocessor does: {"config", "tensors", "num_classes",
    "vocabulary", "lowercase", "strip_accents", "sequence_length"}."""
    directory = os.fspath(directory)
    class_name = read_preset_class(directory)
    if class_name != CLASSIFIER:
        raise WeightsError(f"{directory}: a KerasHub {class_name!r} task preset; bert_tf imports "
                           f"{CLASSIFIER} presets")
    keras_hub = _import_keras_hub()
    try:
        classifier = keras_hub.models.BertTextClassifier.from_preset(directory)
    except Exception as e:  # KerasHub raises ValueError/OSError/h5py errors for damaged presets
        raise WeightsError(f"{directory}: KerasHub could not load the preset: {e}") from None
    activation = getattr(classifier.activation, "__name__", str(classifier.activation))
    if activation != "linear":
        raise WeightsError(f"{directory}: the classifier's activation is {activation!r}; bert_tf "
                           f"classifiers output logits (activation 'linear')")
    tensors = keras_hub_to_canonical(classifier.backbone)
    kernel, bias = (np.asarray(v.numpy()) for v in classifier.output_dense.weights)
    tensors["output_weights"], tensors["output_bias"] = np.transpose(kernel), bias
    preprocessor = classifier.preprocessor
    if preprocessor is None:
        raise WeightsError(f"{directory}: the preset has no preprocessor (its tokenizer and "
                           f"sequence length)")
    tokenizer = preprocessor.tokenizer
    return {"config": keras_hub_config(classifier.backbone), "tensors": tensors,
            "num_classes": int(kernel.shape[1]), "vocabulary": list(tokenizer.get_vocabulary()),
            "lowercase": bool(tokenizer.lowercase), "strip_accents": bool(tokenizer.strip_accents),
            "sequence_length": int(preprocessor.sequence_length)}


def save_keras_hub_classifier(encoder, head_slots: dict, vocabulary, lowercase: bool,
                              sequence_length: int, directory: str, dropout: float = 0.1) -> str:
    """Writes a KerasHub `BertTextClassifier` preset (backbone, preprocessor with a BertTokenizer
    over `vocabulary`, linear head from `head_slots` = the classifier's output_weights /
    output_bias slots); `keras_hub.models.BertTextClassifier.from_preset(directory)` loads it."""
    directory = os.fspath(directory)
    keras_hub = _import_keras_hub()
    backbone = to_keras_hub_backbone(encoder)
    head = collect(head_slots)
    num_classes = int(head["output_weights"].shape[0])
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(vocabulary), lowercase=lowercase,
                                               strip_accents=lowercase)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=num_classes,
                                                     preprocessor=preprocessor, dropout=dropout)
    classifier.output_dense.set_weights([np.transpose(head["output_weights"]),
                                         head["output_bias"]])
    with staged_directory(directory, lambda n: (n == "config.json", n)) as staging:
        classifier.save_to_preset(staging)
    return directory


__all__ = ["load_keras_hub_classifier", "save_keras_hub_classifier", "read_preset_class",
           "load_keras_hub_preset", "read_keras_hub_backbone", "from_keras_hub_backbone", "to_keras_hub_backbone",
           "save_keras_hub_preset", "keras_hub_to_canonical", "keras_hub_config"]
