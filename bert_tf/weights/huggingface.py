"""Hugging Face transformers BERT checkpoints: `config.json` + `model.safetensors` / `pytorch_model.bin`.

Names are converted to the canonical (google-research/bert) scheme:
    encoder.layer.3.attention.self.query.weight [out, in]  ↔  bert/encoder/layer_3/attention/self/query/kernel [in, out]
    embeddings.LayerNorm.weight                              ↔  bert/embeddings/LayerNorm/gamma
    cls.predictions.bias                                     ↔  cls/predictions/output_bias
    cls.seq_relationship.weight [2, hidden]                  ↔  cls/seq_relationship/output_weights [2, hidden]
`BertForPreTraining`/`BertFor*` checkpoints prefix the encoder with `bert.`; bare `BertModel` ones don't.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from bert_tf import fileio
from bert_tf.atomic import atomic_path, write_text_atomic
from bert_tf.config import BertConfig
from bert_tf.weights.canonical import (CanonicalTensors, WeightsError, collect, encoder_slots,
                                       read_json)
from bert_tf.weights.safetensors_io import read_safetensors, read_sharded_index, write_safetensors

# Tensors HF stores that are not parameters, or are tied copies of parameters (verified on load).
_BUFFERS = ("embeddings.position_ids",)
_TIED = {"cls.predictions.decoder.weight": "bert/embeddings/word_embeddings",
         "cls.predictions.decoder.bias": "cls/predictions/output_bias"}


# Head tensors whose names follow no rule (google's NSP weights are already [2, hidden] like HF's).
# The task heads of `BertFor*` map to google-research/bert's fine-tuning names (run_classifier.py's
# `output_weights` [labels, hidden], run_squad.py's `cls/squad/output_weights` [2, hidden]): both
# sides store them [out, in], so none is transposed.
_HEAD_NAMES = {"cls.predictions.bias": "cls/predictions/output_bias",
               "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
               "cls.seq_relationship.bias": "cls/seq_relationship/output_bias",
               "classifier.weight": "output_weights",
               "classifier.bias": "output_bias",
               "qa_outputs.weight": "cls/squad/output_weights",
               "qa_outputs.bias": "cls/squad/output_bias"}
_HEAD_NAMES_BY_CANONICAL = {canonical: hf for hf, canonical in _HEAD_NAMES.items()}


def hf_to_canonical(name: str):
    """HF tensor name → (canonical name, transpose?) or None for a name BERT does not have."""
    name = name.replace(".gamma", ".weight").replace(".beta", ".bias")  # pre-2019 PyTorch names
    if name.startswith("bert."):
        name = name[len("bert."):]
    if name in _HEAD_NAMES:
        return _HEAD_NAMES[name], False
    match = re.fullmatch(r"(.+)\.(weight|bias)", name)
    if not match:
        return None
    path, kind = match.groups()
    path = re.sub(r"encoder\.layer\.(\d+)", r"encoder.layer_\1", path)
    path = path.replace(".", "/")
    if not path.startswith("cls/"):
        path = "bert/" + path
    if path.endswith("LayerNorm"):
        return f"{path}/{'gamma' if kind == 'weight' else 'beta'}", False
    if path.endswith("_embeddings"):
        return (path, False) if kind == "weight" else None
    return f"{path}/{'kernel' if kind == 'weight' else 'bias'}", kind == "weight"


def canonical_to_hf(name: str, prefix: str = ""):
    """Canonical name → (HF name, transpose?). `prefix` is "bert." for BertFor* checkpoints."""
    if name in _HEAD_NAMES_BY_CANONICAL:
        return _HEAD_NAMES_BY_CANONICAL[name], False
    path, last = name.rsplit("/", 1)
    if path.startswith("bert/"):
        path = prefix + path[len("bert/"):]
    path = re.sub(r"layer_(\d+)", r"layer.\1", path).replace("/", ".")
    if last in ("gamma", "beta"):
        return f"{path}.{'weight' if last == 'gamma' else 'bias'}", False
    if last == "kernel":
        return f"{path}.weight", True
    if last == "bias":
        return f"{path}.bias", False
    return f"{path}.{last}.weight", False  # embedding tables


def read_hf_tensors(directory: str) -> dict:
    """Raw HF tensors from a directory: safetensors (single or sharded) or pytorch_model.bin."""
    candidates = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"]
    for filename in candidates:
        path = os.path.join(directory, filename)
        if not fileio.isfile(path):
            continue
        if filename == "model.safetensors":
            return read_safetensors(path)
        if filename.endswith(".index.json"):
            return read_sharded_index(directory, filename)
        try:
            import torch
        except ImportError:
            raise WeightsError(f"{path} is a PyTorch pickle; install torch to read it, or convert it "
                               "to model.safetensors") from None
        try:
            # weights_only=True: a checkpoint is data, never code to execute.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError/RuntimeError variants
            # torch's message runs to several lines of advice (including "weights_only=False",
            # which would run the file's code): its first line says what was refused.
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(f"Cannot load {path} with torch.load(weights_only=True), a pickle "
                               f"that is not plain tensors is refused: {first}") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise WeightsError(f"{path}: expected a state dict of tensors, got "
                               f"{type(state).__name__}")
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}
    raise WeightsError(f"{directory}: no model.safetensors, model.safetensors.index.json or "
                       "pytorch_model.bin found")


def to_canonical(hf_tensors: dict, source: str) -> dict:
    """HF tensors → canonical tensors. Unknown names are kept under their HF name (so the strict
    assignment reports them as unused); tied copies are checked, not silently dropped."""
    canonical, tied = CanonicalTensors(), {}
    for name, value in hf_tensors.items():
        bare = name[len("bert."):] if name.startswith("bert.") else name
        if bare in _BUFFERS:
            continue
        if name in _TIED:
            tied[name] = value
            continue
        converted = hf_to_canonical(name)
        if converted is None:
            canonical[name] = value
            continue
        target, transpose = converted
        if target in canonical:
            raise WeightsError(f"{source}: tensor {name} appears twice (as {target})")
        canonical[target] = np.transpose(value) if transpose else value
        canonical.origin[target] = name
    for name, value in tied.items():
        original = canonical.get(_TIED[name])
        if original is not None and (original.shape != value.shape or not np.array_equal(original, value)):
            raise WeightsError(f"{source}: {name} should be tied to {_TIED[name]} but differs; "
                               "untied decoders are not supported")
    return canonical


def load_hf_checkpoint(directory: str):
    """(BertConfig, canonical tensors) from an HF model directory."""
    config_path = os.path.join(directory, "config.json")
    if not fileio.isfile(config_path):
        raise WeightsError(f"{directory}: no config.json (not a Hugging Face model directory)")
    config = BertConfig.from_json_file(config_path)
    return config, to_canonical(read_hf_tensors(directory), source=directory)


# ---------------------------------------------------------------------- tokenizer files
# What a transformers 5 `BertTokenizer` directory holds: tokenizer.json (the fast tokenizer's
# whole pipeline, the vocabulary inside; transformers 5 writes no vocab.txt) and/or vocab.txt, and
# tokenizer_config.json. Only what bert_tf's tokenizer can do exactly is accepted.
_BERT_TOKENIZER_CLASSES = (None, "BertTokenizer", "BertTokenizerFast")
_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}
_NO_LIMIT = 10 ** 6   # transformers' "no model_max_length" is int(1e30)


def _vocabulary_from_tokenizer_json(model: dict, path: str) -> list:
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise WeightsError(f"{path}: model.vocab is not a token → id map")
    ids = sorted(vocab.values()) if all(isinstance(v, int) for v in vocab.values()) else None
    if ids != list(range(len(vocab))):
        raise WeightsError(f"{path}: model.vocab ids are not 0..{len(vocab) - 1}, each once")
    tokens = [None] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    return tokens


def read_hf_tokenizer(directory: str) -> dict:
    """{"vocabulary": [tokens], "lowercase": bool, "model_max_length": int | None} of a Hugging
    Face BERT tokenizer directory: tokenizer.json (what the fast tokenizer runs) when present,
    else vocab.txt with tokenizer_config.json's do_lower_case. A tokenizer bert_tf cannot
    reproduce exactly (not WordPiece, strip_accents set apart from lowercasing, Chinese characters
    not split, another subword prefix) is one error saying what."""
    from bert_tf.text.vocabulary import read_vocabulary
    config_path = os.path.join(directory, "tokenizer_config.json")
    config = read_json(config_path, "the tokenizer's settings", dict) \
        if fileio.isfile(config_path) else {}
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class not in _BERT_TOKENIZER_CLASSES:
        raise WeightsError(f"{config_path}: tokenizer_class {tokenizer_class!r} is not BERT's "
                           f"WordPiece tokenizer (BertTokenizer)")
    json_path, vocab_path = (os.path.join(directory, n) for n in ("tokenizer.json", "vocab.txt"))
    if fileio.isfile(json_path):
        data = read_json(json_path, "the fast tokenizer", dict)
        model = data.get("model") or {}
        if model.get("type") != "WordPiece":
            raise WeightsError(f"{json_path}: a {model.get('type')!r} tokenizer model, not "
                               f"WordPiece (BERT's)")
        if model.get("continuing_subword_prefix", "##") != "##":
            raise WeightsError(f"{json_path}: continuing_subword_prefix "
                               f"{model.get('continuing_subword_prefix')!r}, not '##'")
        normalizer = data.get("normalizer") or {}
        if normalizer.get("type") != "BertNormalizer":
            raise WeightsError(f"{json_path}: normalizer {normalizer.get('type')!r}, not "
                               f"BertNormalizer")
        pre_tokenizer = (data.get("pre_tokenizer") or {}).get("type")
        if pre_tokenizer != "BertPreTokenizer":
            raise WeightsError(f"{json_path}: pre_tokenizer {pre_tokenizer!r}, not "
                               f"BertPreTokenizer")
        lowercase = normalizer.get("lowercase", True)
        strip_accents = normalizer.get("strip_accents")
        chinese = normalizer.get("handle_chinese_chars", True)
        where = json_path
        vocabulary = _vocabulary_from_tokenizer_json(model, json_path)
    elif fileio.isfile(vocab_path):
        lowercase = config.get("do_lower_case", True)
        strip_accents = config.get("strip_accents")
        chinese = config.get("tokenize_chinese_chars", True)
        where = config_path
        vocabulary = read_vocabulary(vocab_path)
    else:
        raise WeightsError(f"{directory}: no tokenizer.json or vocab.txt (the model's "
                           f"vocabulary)")
    if not isinstance(lowercase, bool):
        raise WeightsError(f"{where}: lowercase / do_lower_case must be true or false, got "
                           f"{lowercase!r}")
    if strip_accents is not None and strip_accents != lowercase:
        raise WeightsError(f"{where}: strip_accents={strip_accents} with lowercase={lowercase}: "
                           f"bert_tf's tokenizer strips accents exactly when it lowercases")
    if chinese is not True:
        raise WeightsError(f"{where}: Chinese characters are not split "
                           f"(handle_chinese_chars / tokenize_chinese_chars false); bert_tf's "
                           f"tokenizer always splits them, as BERT's does")
    for key, default in _SPECIAL_TOKENS.items():
        token = config.get(key, default)
        if isinstance(token, dict):
            token = token.get("content")
        if token != default:
            raise WeightsError(f"{config_path}: {key} {token!r}; bert_tf's tokenizer uses "
                               f"{default!r}")
    limit = config.get("model_max_length")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and \
        0 < limit < _NO_LIMIT else None
    return {"vocabulary": vocabulary, "lowercase": lowercase, "model_max_length": limit}


def write_hf_tokenizer(directory: str, vocabulary, lowercase: bool, max_length: int) -> None:
    """vocab.txt, tokenizer_config.json and special_tokens_map.json: what
    `AutoTokenizer.from_pretrained` needs to build the BERT tokenizer bert_tf's tokenizer equals
    (lowercasing and accent stripping together, Chinese characters split, inputs truncated at
    `max_length`)."""
    from bert_tf.text.vocabulary import write_vocabulary
    write_vocabulary(list(vocabulary), os.path.join(directory, "vocab.txt"))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": bool(lowercase),
              "strip_accents": None, "tokenize_chinese_chars": True, "do_basic_tokenize": True,
              "model_max_length": int(max_length), **_SPECIAL_TOKENS}
    write_text_atomic(os.path.join(directory, "tokenizer_config.json"),
                      json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_text_atomic(os.path.join(directory, "special_tokens_map.json"),
                      json.dumps(_SPECIAL_TOKENS, indent=2, sort_keys=True) + "\n")


def write_hf_weights(slots: dict, config_data: dict, directory: str, prefix: str = "bert.") -> None:
    """config.json + model.safetensors of a `BertModel` / `BertFor*` model from canonical slots
    (encoder under `prefix`, heads by their own names). Each file is written under a temporary
    name and renamed into place, weights before config: a reader (or a crash) never sees a
    half-written file, and other files in the directory stay."""
    tensors = {}
    for name, value in collect(slots).items():
        hf_name, transpose = canonical_to_hf(name, prefix)
        tensors[hf_name] = np.transpose(value) if transpose else value
    with atomic_path(os.path.join(directory, "model.safetensors"), suffix=".safetensors") as tmp:
        write_safetensors(tmp, tensors)
    write_text_atomic(os.path.join(directory, "config.json"),
                      json.dumps(config_data, indent=2, sort_keys=True) + "\n")


def save_pretrained(encoder, directory: str, extra_slots: dict | None = None, prefix: str = "") -> str:
    """Writes `config.json` + `model.safetensors` in HF layout; the directory appears atomically.

    `extra_slots` (canonical name → Slot) adds head weights, e.g. the pre-training heads with
    `prefix="bert."` to produce a `BertForPreTraining` checkpoint.
    """
    directory = os.fspath(directory)
    slots = encoder_slots(encoder)
    if extra_slots:
        slots.update(extra_slots)
    fileio.makedirs(directory, exist_ok=True)
    config_data = encoder.config.to_hf_dict()
    if extra_slots:  # the architecture transformers should instantiate for a checkpoint with heads
        config_data["architectures"] = ["BertForPreTraining"]
    write_hf_weights(slots, config_data, directory, prefix)
    return directory
