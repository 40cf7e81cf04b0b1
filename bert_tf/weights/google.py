"""google-research/bert TF1 checkpoints: `bert_config.json` + `bert_model.ckpt.{index,data-*}`.

The canonical naming *is* google's, so tensors are read and written under their own names and
layouts (kernels [in, out], `cls/seq_relationship/output_weights` [2, hidden]); the only work is
choosing which checkpoint entries are model weights.

Optimizer state rule: a pre-training or fine-tuning run saves, next to each weight, the optimizer's
slots and a few counters. These are dropped on read, by name, and logged:
- names ending in a slot suffix of an optimizer that BERT code is trained with: google's
  AdamWeightDecayOptimizer (`/adam_m`, `/adam_v`), tf.compat.v1 Adam/Momentum/Adagrad/RMSProp
  (`/Adam`, `/Adam_1`, `/Momentum`, `/Adagrad`, `/RMSProp`, `/RMSProp_1`) and LAMB implementations
  (`/LAMB`, `/LAMB_1`, `/lamb_m`, `/lamb_v`);
- the counters `global_step`, `beta1_power`, `beta2_power` and the dynamic loss-scale state of
  mixed-precision runs (`loss_scale`, `good_steps`, `current_loss_scale`).
Everything else must be a model weight: an unknown name reaches the strict assignment and is
reported there as unused.

Activation names: google's `modeling.py` computes the *tanh approximation* of gelu for
`"hidden_act": "gelu"`, so a `bert_config.json` "gelu" loads as "gelu_tanh" (what the checkpoint was
trained with). Google has no exact-erf gelu; an exact-gelu encoder is saved as "gelu" (what google's
code will run) plus `"bert_tf_hidden_act": "gelu"`, a key google's BertConfig ignores, so that
bert_tf reads it back exactly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np

from bert_tf import fileio
from bert_tf.atomic import staged_directory, write_text_atomic
from bert_tf.config import BertConfig, ConfigError
from bert_tf.weights.canonical import TASK_HEAD_NAMES, Slot, WeightsError, collect, encoder_slots

logger = logging.getLogger(__name__)

CONFIG_FILE = "bert_config.json"
CHECKPOINT_PREFIX = "bert_model.ckpt"

OPTIMIZER_SLOT_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/Momentum", "/Adagrad",
                           "/RMSProp", "/RMSProp_1", "/LAMB", "/LAMB_1", "/lamb_m", "/lamb_v")
OPTIMIZER_COUNTERS = ("global_step", "beta1_power", "beta2_power", "loss_scale", "good_steps",
                      "current_loss_scale")

# google `hidden_act` → bert_tf's (see the module docstring); unknown names are left to BertConfig.
_FROM_GOOGLE_ACT = {"gelu": "gelu_tanh", "relu": "relu"}
_TO_GOOGLE_ACT = {"gelu_tanh": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu": "gelu",
                  "relu": "relu"}
_EXACT_ACT_KEY = "bert_tf_hidden_act"


def is_optimizer_state(name: str) -> bool:
    """True for checkpoint entries that are optimizer slots or training counters (see the rule)."""
    return name in OPTIMIZER_COUNTERS or name.endswith(OPTIMIZER_SLOT_SUFFIXES)


def prefix_inside(directory: str, prefix: str) -> str:
    """`prefix` (read from `directory`'s `checkpoint` state file), refused when it lies outside
    `directory` (an absolute path or '..' in the state file): a loader reads only what it was
    given. The check is on the path's name (normalized), not on resolved symlinks."""
    root = os.path.normpath(fileio.abspath(directory))
    path = os.path.normpath(fileio.abspath(prefix))
    if os.path.commonpath([root, path]) != root:
        raise WeightsError(f"{os.path.join(directory, 'checkpoint')}: names the checkpoint "
                           f"{prefix}, which lies outside {directory}")
    return prefix


def find_checkpoint_prefix(directory: str) -> str:
    """The TF1 checkpoint prefix in a google-style directory.

    `bert_model.ckpt` (the released layout) wins; otherwise the `checkpoint` state file's latest entry
    (what run_pretraining.py leaves), otherwise the only `*.index` file.
    """
    preferred = os.path.join(directory, CHECKPOINT_PREFIX)
    if fileio.isfile(preferred + ".index"):
        return preferred
    indexes = sorted(n[:-len(".index")] for n in fileio.listdir(directory) if n.endswith(".index"))
    if fileio.isfile(os.path.join(directory, "checkpoint")):
        import tensorflow as tf
        latest = tf.train.latest_checkpoint(directory)
        if latest and fileio.isfile(latest + ".index"):
            return prefix_inside(directory, latest)
    if len(indexes) == 1:
        return os.path.join(directory, indexes[0])
    if not indexes:
        raise WeightsError(f"{directory}: no {CHECKPOINT_PREFIX}.index (nor any other *.index file)")
    raise WeightsError(f"{directory}: no {CHECKPOINT_PREFIX}.index and several checkpoints "
                       f"({', '.join(indexes)}); pass the directory of one checkpoint")


def read_google_config(path: str) -> BertConfig:
    """BertConfig from a google `bert_config.json`, with google's activation meaning."""
    try:
        with fileio.open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise WeightsError(f"Cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict):
        data = dict(data)
        act = data.pop(_EXACT_ACT_KEY, None) or _FROM_GOOGLE_ACT.get(data.get("hidden_act"))
        if act is not None:
            data["hidden_act"] = act
    return BertConfig.from_dict(data, source=path)


def checkpoint_tensor(reader, prefix: str, name: str):
    """`reader.get_tensor(name)`, with a damaged data file (truncated, emptied, bytes changed) as a
    WeightsError naming the checkpoint, not TensorFlow's IndexError/DataLossError."""
    import tensorflow as tf
    try:
        return reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as e:
        message = getattr(e, "message", None) or str(e)
        raise WeightsError(f"Cannot read {name!r} from TF checkpoint {prefix} (data files "
                           f"{prefix}.data-*): {message.strip().splitlines()[0]}") from None


def read_tf1_checkpoint(prefix: str) -> dict:
    """name → float32 numpy array for every model weight; optimizer state dropped by the rule."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise WeightsError(f"Cannot read TF checkpoint {prefix}: {e}") from None
    names = sorted(reader.get_variable_to_shape_map())
    dropped = [n for n in names if is_optimizer_state(n)]
    if dropped:
        logger.info("%s: ignoring %d optimizer entries (slots %s, counters %s)", prefix, len(dropped),
                    "/".join(s.strip("/") for s in OPTIMIZER_SLOT_SUFFIXES), ", ".join(OPTIMIZER_COUNTERS))
    tensors = {}
    for name in names:
        if name in dropped:
            continue
        value = checkpoint_tensor(reader, prefix, name)
        if np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16":
            value = value.astype(np.float32)
        tensors[name] = value
    return tensors


def load_google_checkpoint(directory: str):
    """(BertConfig, canonical tensors) from a google-research/bert model directory."""
    directory = os.fspath(directory)
    config_path = os.path.join(directory, CONFIG_FILE)
    if not fileio.isfile(config_path):
        raise WeightsError(f"{directory}: no {CONFIG_FILE} (not a google-research/bert directory)")
    config = read_google_config(config_path)
    return config, read_tf1_checkpoint(find_checkpoint_prefix(directory))


def google_config_dict(config: BertConfig) -> dict:
    """The keys google's `modeling.BertConfig` reads (plus the exact-gelu marker when needed)."""
    if config.hidden_act not in _TO_GOOGLE_ACT:
        raise WeightsError(f"hidden_act {config.hidden_act!r} has no google-research/bert equivalent")
    if config.layer_norm_eps != 1e-12:
        # google's modeling.py hard-codes 1e-12; another epsilon would silently change its outputs.
        raise WeightsError(f"layer_norm_eps {config.layer_norm_eps} cannot be expressed in "
                           "google-research/bert's format (always 1e-12)")
    data = {
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "hidden_act": _TO_GOOGLE_ACT[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "hidden_size": config.hidden_size,
        "initializer_range": config.initializer_range,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "type_vocab_size": config.type_vocab_size,
        "vocab_size": config.vocab_size,
    }
    if config.hidden_act == "gelu":
        logger.warning("Saving an exact-erf gelu encoder in google format: google-research/bert's "
                       "modeling.py will compute the tanh approximation (outputs differ by ~1e-3); "
                       "bert_tf reads it back as exact gelu via %r", _EXACT_ACT_KEY)
        data[_EXACT_ACT_KEY] = "gelu"
    return data


def write_tf1_checkpoint(prefix: str, tensors: dict) -> None:
    """Writes `tensors` as tf.compat.v1 variables under exactly their names with a v1 Saver.

    Values are fed through placeholders, not baked into the graph as constants, so checkpoints
    larger than the 2 GB GraphDef limit can be written.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default():
        variables, feeds = [], {}
        for name in sorted(tensors):
            value = np.asarray(tensors[name], dtype=np.float32)
            placeholder = v1.placeholder(tf.float32, shape=value.shape)
            variables.append(v1.Variable(placeholder, name=name, trainable=False))
            feeds[placeholder] = value
        for variable, name in zip(variables, sorted(tensors)):
            if variable.op.name != name:  # TF would have uniquified a clashing name
                raise WeightsError(f"Cannot write variable {name!r} (TF named it {variable.op.name!r})")
        saver = v1.train.Saver(variables, write_version=v1.train.SaverDef.V2)
        with v1.Session() as session:
            session.run([v.initializer for v in variables], feed_dict=feeds)
            # write_state=False: no `checkpoint` state file (it would hold the temporary path).
            saver.save(session, prefix, write_meta_graph=False, write_state=False)


def save_google_checkpoint(encoder, directory: str, heads: dict | None = None,
                           vocab_file: str | None = None) -> str:
    """Writes `bert_config.json` + `bert_model.ckpt.*` (+ `vocab.txt`) as google-research/bert does.

    `heads`: extra canonical weights, e.g. `canonical.pretraining_head_slots(...)` (name → Slot) or
    name → array, under `cls/` or a fine-tuning head's names (`output_weights`, `output_bias`).
    Files are written in a temporary directory first; a new directory appears by one rename, an
    existing one gets each file replaced atomically (weights before config).
    """
    directory = os.fspath(directory)
    tensors = collect(encoder_slots(encoder))
    for name, value in (heads or {}).items():
        if not name.startswith("cls/") and name not in TASK_HEAD_NAMES:
            raise WeightsError(f"head weight {name!r} is neither under cls/ (google's head scope) "
                               f"nor a fine-tuning head ({', '.join(TASK_HEAD_NAMES)})")
        tensors[name] = collect({name: value})[name] if isinstance(value, Slot) else np.asarray(value)
    config_text = json.dumps(google_config_dict(encoder.config), indent=2, sort_keys=True) + "\n"

    # Data shards, then the index that points at them, then the config: a reader of an existing
    # directory never sees an index without its data.
    with staged_directory(directory, lambda n: (".index" in n, n == CONFIG_FILE, n)) as staging:
        write_tf1_checkpoint(os.path.join(staging, CHECKPOINT_PREFIX), tensors)
        write_text_atomic(os.path.join(staging, CONFIG_FILE), config_text)
        if vocab_file is not None:
            shutil.copyfile(vocab_file, os.path.join(staging, "vocab.txt"))
    return directory


__all__ = ["load_google_checkpoint", "save_google_checkpoint", "read_google_config",
           "read_tf1_checkpoint", "write_tf1_checkpoint", "is_optimizer_state",
           "find_checkpoint_prefix", "OPTIMIZER_SLOT_SUFFIXES", "OPTIMIZER_COUNTERS"]
