"""sentence-transformers model directories: read their pipeline, write one back.

A sentence-transformers directory is a Hugging Face BERT directory (config.json, model.safetensors,
vocab.txt, tokenizer files) plus `modules.json`, the pipeline run on top of the encoder:

    [{"type": "sentence_transformers.models.Transformer", "path": ""},      the encoder
     {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},  1_Pooling/config.json
     {"type": "sentence_transformers.models.Dense", "path": "2_Dense"},      optional projection
     {"type": "sentence_transformers.models.Normalize", "path": "3_Normalize"}]   optional

`sentence_bert_config.json` beside the encoder gives `max_seq_length` (longer texts are cut) and
`do_lower_case` (lowercasing done by sentence-transformers itself, on top of the tokenizer's).
Newer releases name the classes `sentence_transformers.base.modules...` or
`sentence_transformers.sentence_transformer.modules...`: only the last part of the name counts.

This module reads and writes the pipeline's settings and the projection's tensors as numpy arrays;
`bert_tf.models.BertSentenceEncoder` builds the Keras model from them. Weights are only read from
safetensors (a pickled `pytorch_model.bin` would run code on load).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from bert_tf import fileio
from bert_tf.atomic import replaced_directory
from bert_tf.weights.canonical import WeightsError, read_json
from bert_tf.weights.safetensors_io import read_safetensors, write_safetensors

MODULES_FILE = "modules.json"
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")
# pooling_mode names of sentence-transformers' Pooling config ↔ ours
_ST_POOLING = {"mean": "mean", "cls": "cls", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}
_LEGACY_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                        "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
                        "pooling_mode_weightedmean_tokens": "weightedmean",
                        "pooling_mode_lasttoken": "lasttoken"}
# torch activation classes a Dense module names ↔ Keras activation names
_ACTIVATIONS = {"torch.nn.modules.activation.Tanh": "tanh",
                "torch.nn.modules.linear.Identity": "linear",
                "torch.nn.modules.activation.ReLU": "relu",
                "torch.nn.modules.activation.Sigmoid": "sigmoid",
                "torch.nn.modules.activation.GELU": "gelu"}
_TORCH_ACTIVATIONS = {keras_name: torch_name for torch_name, keras_name in _ACTIVATIONS.items()}


@dataclasses.dataclass
class Projection:
    """A Dense module: y = activation(x @ kernel + bias); kernel [in, out] (torch stores [out, in])."""
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str = "tanh"

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1])


@dataclasses.dataclass
class SentencePipeline:
    """What a sentence-transformers directory runs on top of its encoder."""
    pooling: str = "mean"
    normalize: bool = True
    projection: Projection | None = None
    max_seq_length: int | None = None
    encoder_path: str = ""           # the encoder's folder inside the directory ("" = the root)
    lowercase_input: bool = False    # sentence_bert_config's do_lower_case


def is_sentence_transformers_dir(path) -> bool:
    return fileio.isdir(path) and fileio.isfile(os.path.join(path, MODULES_FILE))


def _inside(directory: str, relative, where: str) -> str:
    """directory/relative, refusing paths that leave the directory (a hostile modules.json)."""
    if not isinstance(relative, str):
        raise WeightsError(f"{where}: 'path' must be a string, got {relative!r}")
    root = fileio.realpath(directory)
    path = fileio.realpath(os.path.join(root, relative))
    if path != root and not path.startswith(root + os.sep):
        raise WeightsError(f"{where}: module path {relative!r} points outside {directory}")
    return path


def _pooling_mode(config: dict, path: str) -> str:
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        if isinstance(mode, list) and len(mode) == 1:
            mode = mode[0]
        if not isinstance(mode, str):
            raise WeightsError(f"{path}: pooling_mode {mode!r}: concatenated poolings are not "
                               f"supported (one of {list(_ST_POOLING)})")
        if mode not in _ST_POOLING:
            raise WeightsError(f"{path}: pooling_mode {mode!r} is not supported (one of "
                               f"{list(_ST_POOLING)})")
        return _ST_POOLING[mode]
    active = [ours for key, ours in _LEGACY_POOLING_KEYS.items() if config.get(key)]
    if not active:
        return "mean"   # sentence-transformers' default
    if len(active) > 1 or active[0] not in POOLING_MODES:
        raise WeightsError(f"{path}: pooling {active} is not supported (one of {list(POOLING_MODES)})")
    return active[0]


def _read_projection(folder: str) -> Projection:
    config_path = os.path.join(folder, "config.json")
    config = read_json(config_path, "a Dense module's config")
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in _ACTIVATIONS:
        raise WeightsError(f"{config_path}: activation_function {activation!r} is not supported "
                           f"(one of {sorted(_ACTIVATIONS)})")
    if config.get("use_residual"):
        raise WeightsError(f"{config_path}: use_residual Dense modules are not supported")
    weights_path = os.path.join(folder, "model.safetensors")
    if not fileio.isfile(weights_path):
        raise WeightsError(f"{folder}: no model.safetensors (a pickled pytorch_model.bin is not "
                           f"read: it can run code on load)")
    tensors = read_safetensors(weights_path)
    if "linear.weight" not in tensors:
        raise WeightsError(f"{weights_path}: no 'linear.weight' tensor")
    weight = np.asarray(tensors["linear.weight"], np.float32)                   # [out, in]
    shape = (config.get("out_features"), config.get("in_features"))
    if weight.ndim != 2 or tuple(weight.shape) != shape:
        raise WeightsError(f"{weights_path}: linear.weight has shape {tuple(weight.shape)}, "
                           f"config.json says [out_features, in_features] = {list(shape)}")
    bias = None
    if config.get("bias", True):
        if "linear.bias" not in tensors or tuple(tensors["linear.bias"].shape) != (shape[0],):
            raise WeightsError(f"{weights_path}: expected a 'linear.bias' of shape [{shape[0]}]")
        bias = np.asarray(tensors["linear.bias"], np.float32)
    return Projection(weight.T.copy(), bias, _ACTIVATIONS[activation])


def read_pipeline(directory) -> SentencePipeline:
    """The pipeline of a sentence-transformers directory (see the module docstring). Modules other
    than one Transformer, one Pooling, at most one Dense and a final Normalize are errors."""
    directory = os.fspath(directory)
    modules_path = os.path.join(directory, MODULES_FILE)
    modules = read_json(modules_path, "the sentence-transformers pipeline")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise WeightsError(f"{modules_path}: expected a JSON list of module objects")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    allowed = (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"],
               ["Transformer", "Pooling", "Dense"], ["Transformer", "Pooling", "Dense", "Normalize"])
    if kinds not in allowed:
        raise WeightsError(f"{modules_path}: the pipeline {kinds} is not supported; bert_tf reads "
                           f"Transformer, Pooling, an optional Dense and an optional Normalize")
    pipeline = SentencePipeline(normalize=kinds[-1] == "Normalize")
    folders = [_inside(directory, m.get("path", ""), modules_path) for m in modules]
    pipeline.encoder_path = os.path.relpath(folders[0], fileio.realpath(directory))
    if pipeline.encoder_path == ".":
        pipeline.encoder_path = ""
    pooling_path = os.path.join(folders[1], "config.json")
    pipeline.pooling = _pooling_mode(read_json(pooling_path, "the Pooling config"), pooling_path)
    if "Dense" in kinds:
        pipeline.projection = _read_projection(folders[kinds.index("Dense")])
    st_config = os.path.join(folders[0], "sentence_bert_config.json")
    if fileio.isfile(st_config):
        settings = read_json(st_config, "sentence_bert_config")
        length = settings.get("max_seq_length")
        if length is not None and (not isinstance(length, int) or isinstance(length, bool)
                                   or length < 2):
            raise WeightsError(f"{st_config}: max_seq_length must be an integer >= 2, got {length!r}")
        pipeline.max_seq_length = length
        pipeline.lowercase_input = bool(settings.get("do_lower_case", False))
    return pipeline


def write_pipeline(staging: str, pipeline: SentencePipeline, hidden_size: int,
                   lowercase: bool) -> None:
    """Writes modules.json, the module folders and the tokenizer settings into `staging`, which
    already holds the encoder's config.json, model.safetensors and vocab.txt."""
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"}]

    def add(kind: str, settings: dict | None):
        idx = len(modules)
        folder = f"{idx}_{kind}"
        modules.append({"idx": idx, "name": str(idx), "path": folder,
                        "type": f"sentence_transformers.models.{kind}"})
        fileio.makedirs(os.path.join(staging, folder))
        if settings is not None:
            _write_json(os.path.join(staging, folder, "config.json"), settings)
        return os.path.join(staging, folder)

    # The boolean keys every sentence-transformers release reads (newer ones convert them).
    legacy = {key: ours == pipeline.pooling for key, ours in _LEGACY_POOLING_KEYS.items()
              if ours in POOLING_MODES}
    add("Pooling", {"word_embedding_dimension": hidden_size, **legacy})
    if pipeline.projection is not None:
        projection = pipeline.projection
        folder = add("Dense", {"in_features": int(projection.kernel.shape[0]),
                               "out_features": projection.units,
                               "bias": projection.bias is not None,
                               "activation_function": _TORCH_ACTIVATIONS[projection.activation]})
        tensors = {"linear.weight": np.ascontiguousarray(projection.kernel.T, np.float32)}
        if projection.bias is not None:
            tensors["linear.bias"] = np.asarray(projection.bias, np.float32)
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors,
                          metadata={"format": "pt"})
    if pipeline.normalize:
        add("Normalize", None)
    _write_json(os.path.join(staging, MODULES_FILE), modules)
    length = pipeline.max_seq_length or 512
    _write_json(os.path.join(staging, "sentence_bert_config.json"),
                {"max_seq_length": length, "do_lower_case": False})
    _write_json(os.path.join(staging, "tokenizer_config.json"),
                {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase,
                 "strip_accents": None, "tokenize_chinese_chars": True,
                 "model_max_length": length, "unk_token": "[UNK]", "sep_token": "[SEP]",
                 "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"})
    _write_json(os.path.join(staging, "special_tokens_map.json"),
                {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                 "cls_token": "[CLS]", "mask_token": "[MASK]"})


def _write_json(path: str, value) -> None:
    with fileio.open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def publish_directory(write, directory) -> str:
    """Runs `write(staging)` into a fresh hidden staging directory, then puts it in place of
    `directory` as a whole (`bert_tf.atomic.replaced_directory`): a reader never sees a mix of old
    and new files, and a writer killed midway leaves the old directory (or none) and a stale
    temporary that the next write cleans up."""
    directory = os.fspath(directory)
    if fileio.exists(directory) and not fileio.isdir(directory):
        raise WeightsError(f"{directory}: exists and is not a directory")
    with replaced_directory(directory) as staging:
        write(staging)
    return directory
