"""BertConfig: the hyper-parameters of a BERT encoder, with validation and JSON I/O.

One config type serves every format we read or write:
- Hugging Face `config.json` (keys like `hidden_act`, `layer_norm_eps`, `model_type: "bert"`),
- google-research/bert `bert_config.json` (same keys minus `layer_norm_eps`; google always used 1e-12),
- bert_tf's own `.keras` files (the dict returned by `to_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import os

from bert_tf import fileio
from bert_tf.atomic import write_text_atomic

# "gelu" is the exact erf form (HF's meaning); "gelu_new"/"gelu_tanh" the tanh approximation that
# google-research/bert's modeling.py computes; "gelu_pytorch_tanh" is HF's name for the same thing.
ACTIVATIONS = ("gelu", "gelu_new", "gelu_tanh", "gelu_pytorch_tanh", "relu")

# Presets follow google-research/bert's released shapes (Turc et al., "Well-Read Students", for the
# small ones): intermediate = 4 * hidden, head size 64.
_PRESETS = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(num_hidden_layers=8, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
}


class ConfigError(ValueError):
    """A BertConfig field or file that cannot describe a BERT model."""


@dataclasses.dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        problems = []
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                problems.append(f"{name} must be in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{name} must be a positive number, got {value!r}")
        if self.hidden_act not in ACTIVATIONS:
            problems.append(f"hidden_act must be one of {', '.join(ACTIVATIONS)}; got {self.hidden_act!r}")
        if (isinstance(self.hidden_size, int) and isinstance(self.num_attention_heads, int)
                and self.num_attention_heads > 0 and self.hidden_size % self.num_attention_heads):
            problems.append(f"hidden_size ({self.hidden_size}) must be divisible by "
                            f"num_attention_heads ({self.num_attention_heads})")
        if not isinstance(self.pad_token_id, int) or self.pad_token_id < 0:
            problems.append(f"pad_token_id must be a non-negative integer, got {self.pad_token_id!r}")
        if problems:
            raise ConfigError("Invalid BertConfig: " + "; ".join(problems))

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides) -> "BertConfig":
        if name not in _PRESETS:
            raise ConfigError(f"Unknown BertConfig preset {name!r}; known presets: {', '.join(_PRESETS)}")
        return cls(**{**_PRESETS[name], **overrides})

    @staticmethod
    def preset_names() -> tuple:
        return tuple(_PRESETS)

    # ------------------------------------------------------------------ dict / JSON I/O
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "BertConfig":
        """Builds a config from HF `config.json`, google `bert_config.json` or `to_dict()` output.

        Keys that belong to other parts of an HF config (architectures, torch_dtype, ...) are ignored;
        a config of another model type (e.g. "roberta") is refused since its weights differ.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "bert")
        if model_type != "bert":
            raise ConfigError(f"{source}: model_type is {model_type!r}, only 'bert' is supported")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: data[k] for k in fields if k in data and data[k] is not None}
        required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size")
        missing = [k for k in required if k not in kwargs]
        if missing:
            raise ConfigError(f"{source}: missing required key(s) {', '.join(missing)}")
        position_type = data.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ConfigError(f"{source}: position_embedding_type {position_type!r} is not supported "
                              "(only 'absolute', as in BERT)")
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        path = os.fspath(path)
        try:
            with fileio.open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"Config file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, source=path)

    def to_hf_dict(self) -> dict:
        """The keys transformers' BertConfig expects (written by `save_pretrained`)."""
        data = self.to_dict()
        data.update(model_type="bert", architectures=["BertModel"], position_embedding_type="absolute")
        return data

    def to_json_file(self, path: str | os.PathLike, hf_format: bool = True) -> None:
        """Writes JSON atomically (temp file + rename) so a reader never sees half a file."""
        path = os.fspath(path)
        data = self.to_hf_dict() if hf_format else self.to_dict()
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
