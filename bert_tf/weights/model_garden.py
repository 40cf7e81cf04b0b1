"""TF Model Garden (tf-models-official) BERT encoders: `tf.train.Checkpoint`s and live networks.

A Model Garden checkpoint is an object-graph checkpoint (`tf.train.Checkpoint(encoder=network)` or
`tf.train.Checkpoint(**BertPretrainerV2(...).checkpoint_items)`): its keys are attribute paths
ending in `/.ATTRIBUTES/VARIABLE_VALUE`. For `networks.BertEncoderV2` (relative to the encoder):

    _embedding_layer/embeddings                         → bert/embeddings/word_embeddings
    _position_embedding_layer/embeddings                → bert/embeddings/position_embeddings
    _type_embedding_layer/embeddings                    → bert/embeddings/token_type_embeddings
    _embedding_norm_layer/{gamma,beta}                  → bert/embeddings/LayerNorm/{gamma,beta}
    _transformer_layers/i/_attention_layer/_{query,key,value}_dense  kernel [h, n, d], bias [n, d]
                                                        → bert/encoder/layer_i/attention/self/* [h, h], [h]
    _transformer_layers/i/_attention_layer/_output_dense  kernel [n, d, h]
                                                        → bert/encoder/layer_i/attention/output/dense
    _transformer_layers/i/_attention_layer_norm         → bert/encoder/layer_i/attention/output/LayerNorm
    _transformer_layers/i/_intermediate_dense           → bert/encoder/layer_i/intermediate/dense
    _transformer_layers/i/_output_dense                 → bert/encoder/layer_i/output/dense
    _transformer_layers/i/_output_layer_norm            → bert/encoder/layer_i/output/LayerNorm
    _pooler_layer/{kernel,bias}                         → bert/pooler/dense
The older functional `networks.BertEncoder` stores the same layers as `layer_with_weights-K` in
construction order (word, position, type, embedding LayerNorm, the blocks, pooler); those keys are
renamed to the V2 paths first. A pre-trainer's `masked_lm/{dense,layer_norm,output_bias.Sbias}` become
`cls/predictions/...`, and its `masked_lm/embedding_table` (where the checkpoint stores the shared
word table when saved through the pre-trainer) is the word embedding table.

Optimizer state rule: `optimizer/...`, anything under `/.OPTIMIZER_SLOT/`, `save_counter`,
`global_step` and the object graph itself are dropped (logged). Any other key outside the mapping
is kept under its own name so the strict assignment reports it as unused.

The config is inferred from tensor shapes (vocab, hidden, layers, heads from the [hidden, heads,
head_size] query kernel, intermediate, max positions, type vocab) unless `config=` is given.
The activation cannot be seen in weights: the default is "gelu_tanh", which is what BertEncoderV2's
default `inner_activation` and Model Garden's `"gelu"` config name (`tf_utils.get_activation`)
both compute (the tanh approximation); pass `hidden_act=` or `config=` otherwise. Model Garden
options bert_tf has no equivalent for are refused: `embedding_width != hidden_size` (factorized
embeddings: an `_embedding_projection` tensor) and, for live networks, `norm_first=True` (pre-LN;
a pre-LN *checkpoint* has the same tensors as a post-LN one, so it cannot be detected from a file).
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile

import numpy as np

from bert_tf import fileio
from bert_tf.config import BertConfig
from bert_tf.weights.canonical import CanonicalTensors, WeightsError, assign, encoder_slots
from bert_tf.weights.google import checkpoint_tensor, prefix_inside

logger = logging.getLogger(__name__)

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
DEFAULT_HIDDEN_ACT = "gelu_tanh"

_LAYER = r"_transformer_layers/(\d+)"
_ENCODER_NAMES = [
    (r"_embedding_layer/embeddings", "bert/embeddings/word_embeddings"),
    (r"_position_embedding_layer/embeddings", "bert/embeddings/position_embeddings"),
    (r"_type_embedding_layer/embeddings", "bert/embeddings/token_type_embeddings"),
    (r"_embedding_norm_layer/(gamma|beta)", r"bert/embeddings/LayerNorm/\1"),
    (_LAYER + r"/_attention_layer/_(query|key|value)_dense/(kernel|bias)",
     r"bert/encoder/layer_\1/attention/self/\2/\3"),
    (_LAYER + r"/_attention_layer/_output_dense/(kernel|bias)",
     r"bert/encoder/layer_\1/attention/output/dense/\2"),
    (_LAYER + r"/_attention_layer_norm/(gamma|beta)", r"bert/encoder/layer_\1/attention/output/LayerNorm/\2"),
    (_LAYER + r"/_intermediate_dense/(kernel|bias)", r"bert/encoder/layer_\1/intermediate/dense/\2"),
    (_LAYER + r"/_output_dense/(kernel|bias)", r"bert/encoder/layer_\1/output/dense/\2"),
    (_LAYER + r"/_output_layer_norm/(gamma|beta)", r"bert/encoder/layer_\1/output/LayerNorm/\2"),
    (r"_pooler_layer/(kernel|bias)", r"bert/pooler/dense/\1"),
]
_MASKED_LM_NAMES = [
    (r"masked_lm/dense/(kernel|bias)", r"cls/predictions/transform/dense/\1"),
    (r"masked_lm/layer_norm/(gamma|beta)", r"cls/predictions/transform/LayerNorm/\1"),
    # the MaskedLM layer's weight is named "output_bias/bias"; object graphs escape "/" as ".S"
    (r"masked_lm/output_bias\.Sbias", "cls/predictions/output_bias"),
    (r"masked_lm/embedding_table", "bert/embeddings/word_embeddings"),
]


def is_optimizer_state(key: str) -> bool:
    """True for object-graph keys that are optimizer slots, counters or the graph itself."""
    return (key.startswith("optimizer/") or "/.OPTIMIZER_SLOT/" in key
            or key in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter", "global_step"))


def find_checkpoint_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix, a directory with a `checkpoint` state file, or a directory
    holding exactly one `*.index`."""
    import tensorflow as tf

    path = os.fspath(path)
    if fileio.isfile(path + ".index"):
        return path
    if fileio.isdir(path):
        latest = tf.train.latest_checkpoint(path) if fileio.isfile(
            os.path.join(path, "checkpoint")) else None
        if latest and fileio.isfile(latest + ".index"):
            return prefix_inside(path, latest)
        indexes = sorted(n[:-len(".index")] for n in fileio.listdir(path) if n.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0])
        if indexes:
            raise WeightsError(f"{path}: several checkpoints ({', '.join(indexes)}) and no "
                               "`checkpoint` file naming the latest; pass one prefix")
    raise WeightsError(f"{path}: no TF checkpoint (expected PREFIX.index or a directory with one)")


# ----------------------------------------------------------------------------- key normalisation
def _v1_to_v2(keys: list, scope: str) -> dict:
    """Old functional BertEncoder keys (`layer_with_weights-K/...`) → BertEncoderV2 relative paths."""
    pattern = re.compile(re.escape(scope) + r"layer_with_weights-(\d+)/(.+)")
    by_index = {}
    for key in keys:
        match = pattern.fullmatch(key)
        if match:
            by_index.setdefault(int(match.group(1)), []).append((key, match.group(2)))
    blocks = sorted(k for k, items in by_index.items()
                    if any(rest.startswith("_attention_layer/") for _, rest in items))
    others = sorted(set(by_index) - set(blocks))
    before = [k for k in others if k < blocks[0]]
    after = [k for k in others if k > blocks[-1]]
    # Construction order: word, position, type, embedding LayerNorm, [projection], blocks, pooler.
    names = ["_embedding_layer", "_position_embedding_layer", "_type_embedding_layer",
             "_embedding_norm_layer", "_embedding_projection"]
    if len(before) not in (4, 5) or len(after) != 1 or blocks != list(range(blocks[0], blocks[-1] + 1)):
        raise WeightsError(f"Unrecognised functional BertEncoder layout under {scope!r}: layers "
                           f"{before} before the transformer blocks {blocks}, {after} after")
    renamed = {}
    for k in before:
        for key, rest in by_index[k]:
            renamed[key] = f"{names[before.index(k)]}/{rest}"
    for i, k in enumerate(blocks):
        for key, rest in by_index[k]:
            renamed[key] = f"_transformer_layers/{i}/{rest}"
    for key, rest in by_index[after[0]]:
        renamed[key] = f"_pooler_layer/{rest}"
    return renamed


def _encoder_scope(keys: list, source: str) -> tuple:
    """(scope prefix of the encoder, key → V2 relative path for the encoder's keys)."""
    v2 = {k[:-len("_embedding_norm_layer/gamma")] for k in keys if k.endswith("_embedding_norm_layer/gamma")}
    if len(v2) == 1:
        scope = v2.pop()
        return scope, {k: k[len(scope):] for k in keys if k.startswith(scope)}
    v1 = {m.group(1) for k in keys
          if (m := re.fullmatch(r"(.*)layer_with_weights-\d+/_attention_layer/_query_dense/kernel", k))}
    if not v2 and len(v1) == 1:
        scope = v1.pop()
        return scope, _v1_to_v2(keys, scope)
    if v2 or v1:
        raise WeightsError(f"{source}: several BERT encoders in one checkpoint "
                           f"({', '.join(sorted(v2 | v1))}); only one is supported")
    raise WeightsError(f"{source}: no Model Garden BERT encoder found (no .../_embedding_norm_layer "
                       "or layer_with_weights-K/_attention_layer variables)")


def _to_canonical_layout(name: str, value: np.ndarray) -> np.ndarray:
    """Merges Model Garden's per-head axes into google's 2-D kernels / 1-D biases."""
    if "/attention/self/" in name:
        # kernel [hidden, heads, head_size] → [hidden, hidden]; bias [heads, head_size] → [hidden]
        return value.reshape(value.shape[0], -1) if name.endswith("kernel") else value.reshape(-1)
    if name.endswith("/attention/output/dense/kernel"):
        return value.reshape(-1, value.shape[-1])           # [heads, head_size, hidden] → [hidden, hidden]
    return value


def _rename(relative: str, table) -> str | None:
    for pattern, replacement in table:
        if re.fullmatch(pattern, relative):
            return re.sub(pattern, replacement, relative)
    return None


# ----------------------------------------------------------------------------- config
def infer_config(raw: dict, hidden_act: str = DEFAULT_HIDDEN_ACT, source: str = "checkpoint") -> BertConfig:
    """BertConfig from the shapes of Model Garden tensors (keys are V2 relative paths)."""
    def shape(key):
        if key not in raw:
            raise WeightsError(f"{source}: cannot infer the config, no {key} tensor (pass config=)")
        return raw[key].shape

    vocab, width = shape("_embedding_layer/embeddings")
    positions, _ = shape("_position_embedding_layer/embeddings")
    type_vocab, _ = shape("_type_embedding_layer/embeddings")
    hidden, heads, _ = shape("_transformer_layers/0/_attention_layer/_query_dense/kernel")
    _, intermediate = shape("_transformer_layers/0/_intermediate_dense/kernel")
    layers = 1 + max(int(m.group(1)) for k in raw if (m := re.match(r"_transformer_layers/(\d+)/", k)))
    return BertConfig(vocab_size=int(vocab), hidden_size=int(hidden), num_hidden_layers=layers,
                      num_attention_heads=int(heads), intermediate_size=int(intermediate),
                      hidden_act=hidden_act, max_position_embeddings=int(positions),
                      type_vocab_size=int(type_vocab))


# ----------------------------------------------------------------------------- in
def read_model_garden_tensors(prefix: str, source: str) -> tuple:
    """(V2-relative encoder tensors, canonical tensors) from an object-graph checkpoint."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise WeightsError(f"Cannot read TF checkpoint {prefix}: {e}") from None
    entries = {}
    dropped = 0
    for key in reader.get_variable_to_shape_map():
        short = key[:-len(_VALUE_SUFFIX)] if key.endswith(_VALUE_SUFFIX) else key
        if is_optimizer_state(short):
            dropped += 1
            continue
        entries[short] = key
    if dropped:
        logger.info("%s: ignoring %d optimizer/bookkeeping entries (optimizer/..., .OPTIMIZER_SLOT, "
                    "save_counter, global_step)", source, dropped)
    scope, relative = _encoder_scope(sorted(entries), source)
    raw, canonical = {}, CanonicalTensors()   # canonical.origin: errors name the checkpoint's keys
    for short, key in sorted(entries.items()):
        value = checkpoint_tensor(reader, prefix, key)
        if np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16":
            value = value.astype(np.float32)
        if short in relative:
            rel = relative[short]
            if rel.startswith("_embedding_projection/"):
                raise WeightsError(f"{source}: the encoder has factorized embeddings ({short}: "
                                   "embedding_width != hidden_size), which BERT/bert_tf does not have")
            raw[rel] = value
            name = _rename(rel, _ENCODER_NAMES)
        else:
            name = _rename(short[len(scope):] if short.startswith(scope) else short, _MASKED_LM_NAMES)
            if name == "bert/embeddings/word_embeddings":
                raw.setdefault("_embedding_layer/embeddings", value)
        if name is None:
            canonical[short] = value    # reported as unused by the strict assignment
        elif name in canonical:
            if not np.array_equal(canonical[name], value):
                raise WeightsError(f"{source}: two different tensors for {name}")
        else:
            canonical[name] = _to_canonical_layout(name, value)
            canonical.origin[name] = short
    return raw, canonical


def load_model_garden_checkpoint(path, config: BertConfig | None = None,
                                 hidden_act: str = DEFAULT_HIDDEN_ACT):
    """(BertConfig, canonical tensors) from a Model Garden BERT encoder checkpoint."""
    source = os.fspath(path)
    prefix = find_checkpoint_prefix(source)
    raw, canonical = read_model_garden_tensors(prefix, source)
    if config is None:
        config = infer_config(raw, hidden_act=hidden_act, source=source)
    return config, canonical


def load_model_garden_task(path, head: tuple, config: BertConfig | None = None,
                           hidden_act: str = DEFAULT_HIDDEN_ACT):
    """(BertConfig, canonical tensors) of a fine-tuned Model Garden task model checkpoint
    (`tf.train.Checkpoint(model=BertClassifier / BertTokenClassifier / BertSpanLabeler)`): the
    encoder as for `load_model_garden_checkpoint`, and the task head, whatever the model calls it
    (`out_proj` of a ClassificationHead, a bare Dense, SpanLabeling's logit Dense), under `head`'s
    canonical names (`canonical.CLASSIFIER_HEAD` or `SPAN_HEAD`; its kernel [hidden, n] stored
    [n, hidden]). The head must be one Dense: a ClassificationHead with an inner layer
    (inner_dim > 0) is not BERT's head and is refused, naming its tensors."""
    config, canonical = load_model_garden_checkpoint(path, config=config, hidden_act=hidden_act)
    source = os.fspath(path)
    extra = sorted(k for k in canonical if not k.startswith(("bert/", "cls/")))
    kernels = [k for k in extra if k.endswith("/kernel") and np.ndim(canonical[k]) == 2]
    biases = [k for k in extra if k.endswith("/bias") and np.ndim(canonical[k]) == 1]
    if len(extra) != 2 or len(kernels) != 1 or len(biases) != 1:
        raise WeightsError(f"{source}: expected the task head to be one Dense layer (a kernel and "
                           f"a bias beside the encoder), found {', '.join(extra) or 'none'}")
    kernel, bias = canonical.pop(kernels[0]), canonical.pop(biases[0])
    if kernel.shape[0] != config.hidden_size or kernel.shape[1] != bias.shape[0]:
        raise WeightsError(f"{source}: head {kernels[0]} {kernel.shape} and {biases[0]} "
                           f"{bias.shape} do not fit a Dense on hidden size {config.hidden_size}")
    weights_name, bias_name = head
    canonical[weights_name], canonical[bias_name] = np.transpose(kernel), bias
    canonical.origin[weights_name], canonical.origin[bias_name] = kernels[0], biases[0]
    return config, canonical


# ----------------------------------------------------------------------------- live networks
def _activation_name(activation, source: str) -> str:
    """Which bert_tf activation a Model Garden activation callable computes (checked numerically)."""
    import tensorflow as tf

    x = np.linspace(-5.0, 5.0, 101, dtype=np.float32)
    y = np.asarray(activation(tf.constant(x)))
    candidates = {
        "gelu": 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
        "gelu_tanh": 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
        "relu": np.maximum(x, 0.0),
    }
    for name, expected in candidates.items():
        if np.max(np.abs(y - expected)) < 1e-5:
            return name
    raise WeightsError(f"{source}: the encoder's inner activation is neither gelu (exact or tanh) "
                       "nor relu")


def read_model_garden_encoder(network):
    """(BertConfig, canonical encoder tensors) of a live (built) Model Garden BertEncoderV2/BertEncoder."""
    import tensorflow as tf

    source = f"Model Garden {type(network).__name__}"
    if type(network).__name__ not in ("BertEncoderV2", "BertEncoder") or not hasattr(network, "get_config"):
        raise WeightsError(f"expected official.nlp.modeling.networks.BertEncoderV2, got {source}")
    options = network.get_config()
    if options.get("norm_first"):
        raise WeightsError(f"{source} uses norm_first=True (pre-LN); BERT is post-LN")
    if options.get("embedding_width") not in (None, options.get("hidden_size")):
        raise WeightsError(f"{source} has embedding_width {options['embedding_width']} != hidden_size "
                           f"{options['hidden_size']} (factorized embeddings are not BERT's)")
    if not network.weights:
        raise WeightsError(f"{source} has no weights yet; call it once on inputs to build it")
    block = network._transformer_layers[0]
    hidden_act = _activation_name(block._intermediate_activation_layer, source)
    # Through a temporary object-graph checkpoint, so live objects and files share one mapping.
    with tempfile.TemporaryDirectory(prefix="bert_tf-model-garden-") as tmp:
        prefix = tf.train.Checkpoint(encoder=network).write(os.path.join(tmp, "encoder"))
        raw, canonical = read_model_garden_tensors(prefix, source)
    config = infer_config(raw, hidden_act=hidden_act, source=source)
    config.hidden_dropout_prob = float(options.get("output_dropout", config.hidden_dropout_prob))
    config.attention_probs_dropout_prob = float(options.get("attention_dropout",
                                                            config.attention_probs_dropout_prob))
    config.validate()
    return config, canonical.subset([k for k in canonical if not k.startswith("cls/")])


def from_model_garden_encoder(network, encoder_class, **encoder_kwargs):
    """An `encoder_class` (`bert_tf.models.BertEncoder`, passed in: this package does not import
    the models) computing what a live (built) Model Garden BertEncoderV2/BertEncoder computes."""
    config, tensors = read_model_garden_encoder(network)
    encoder = encoder_class(config, **encoder_kwargs)
    assign(encoder_slots(encoder), tensors, source=f"Model Garden {type(network).__name__}")
    return encoder


__all__ = ["load_model_garden_checkpoint", "read_model_garden_encoder", "from_model_garden_encoder", "infer_config",
           "read_model_garden_tensors", "find_checkpoint_prefix", "is_optimizer_state",
           "DEFAULT_HIDDEN_ACT"]
