"""BertSentenceEncoder: one vector per text — the encoder's token vectors pooled (mean over the
real tokens, [CLS], or max), optionally projected by a Dense layer, then scaled to unit length.

This is how sentence-transformers models such as the default all-MiniLM-L6-v2 are used for
semantic search, clustering and deduplication. Reads and writes sentence-transformers directories
(`from_pretrained`, `save_sentence_transformers`), so a model moves between the two libraries
with its pipeline; the vectors agree with sentence-transformers' `encode` to float rounding.

Output `embeddings` float32 [b, d] (d = hidden size, or the projection's units). A batch of
[b, k, s] ids (k texts per example, e.g. anchor, positive, negative) gives [b, k, d]: the form
contrastive training feeds.
"""

from __future__ import annotations

import os
import types

import keras
from keras import ops

from bert_tf import fileio
from bert_tf.layers import get_activation
from bert_tf.models.task import BertTaskModel, cls_positions
from bert_tf.weights.sentence_transformers import POOLING_MODES

PROJECTION_ACTIVATIONS = ("tanh", "linear", "relu", "sigmoid", "gelu")


def pool(token_vectors, attention_mask, mode: str):
    """[b, t, h] token vectors (float32), [b, t] mask → [b, h], as sentence-transformers pools.

    mean: the average of the real tokens (their count clamped at 1e-9); mean_sqrt_len: their sum
    over sqrt(count); max: the largest value per dimension over the real tokens (0 for an input
    with none); cls: position 0."""
    if mode == "cls":
        return token_vectors[:, 0]
    mask = ops.cast(attention_mask, token_vectors.dtype)[:, :, None]            # [b, t, 1]
    if mode == "max":
        masked = ops.where(mask > 0, token_vectors, ops.full_like(token_vectors, float("-inf")))
        best = ops.max(masked, axis=1)                                           # [b, h]
        return ops.where(ops.isfinite(best), best, ops.zeros_like(best))
    summed = ops.sum(token_vectors * mask, axis=1)                               # [b, h]
    counts = ops.maximum(ops.sum(mask, axis=1), 1e-9)                            # [b, 1]
    return summed / (ops.sqrt(counts) if mode == "mean_sqrt_len" else counts)


def unit_length(x):
    """x / max(|x|, 1e-12) over the last axis (torch's F.normalize, as sentence-transformers)."""
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-12)


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSentenceEncoder(BertTaskModel):
    """encoder → pooling ("mean" | "cls" | "max" | "mean_sqrt_len") → optional Dense projection
    (`projection_units`, `projection_activation`) → unit length if `normalize`.

    `from_pretrained(path)` reads a sentence-transformers directory's pipeline, or any encoder
    checkpoint with the pooling given (mean by default); it keeps the directory's tokenizer, so
    `encode(texts)` embeds raw strings."""

    pools_positions = True

    def __init__(self, encoder, pooling: str = "mean", normalize: bool = True,
                 projection_units: int | None = None, projection_activation: str = "tanh",
                 projection_bias: bool = True, **kwargs):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if projection_units is not None and (isinstance(projection_units, bool) or
                                             not isinstance(projection_units, int) or
                                             projection_units < 1):
            raise ValueError(f"projection_units must be a positive integer or None, got "
                             f"{projection_units!r}")
        if projection_activation not in PROJECTION_ACTIVATIONS:
            raise ValueError(f"projection_activation must be one of {PROJECTION_ACTIVATIONS}, "
                             f"got {projection_activation!r}")
        self.pooling, self.normalize = pooling, bool(normalize)
        self.projection_units = projection_units
        self.projection_activation, self.projection_bias = projection_activation, projection_bias
        super().__init__(encoder, **kwargs)
        # Not a tracked sublayer: the tokenizer is not part of the model's weights or config
        # (a model directory keeps vocab.txt beside model.keras).
        self._text = types.SimpleNamespace(tokenizer=None)

    @property
    def tokenizer(self):
        """The `BertTokenizer` `from_pretrained` found beside the weights (or None)."""
        return self._text.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer):
        self._text.tokenizer = tokenizer

    @property
    def embedding_size(self) -> int:
        return self.projection_units or self.encoder.config.hidden_size

    def create_heads(self):
        self.projection = None
        if self.projection_units is not None:
            activation = get_activation("gelu") if self.projection_activation == "gelu" \
                else self.projection_activation
            # float32 like the pooling: the projection acts on the pooled vector, not the tokens.
            self.projection = keras.layers.Dense(self.projection_units, activation=activation,
                                                 use_bias=self.projection_bias,
                                                 name="projection", dtype="float32")

    def last_layer_positions(self, inputs):
        # [CLS] pooling reads one row: the last layer computes it alone (as the classifier does).
        return cls_positions(inputs["input_ids"]) if self.pooling == "cls" else None

    def heads(self, inputs, rows, training=None):
        rows = ops.cast(rows, "float32")                                  # [b, t, h] or [b, 1, h]
        vectors = pool(rows, inputs["attention_mask"], self.pooling)      # [b, h]
        if self.projection is not None:
            vectors = self.projection(vectors)                            # [b, d]
        if self.normalize:
            vectors = unit_length(vectors)
        return {"embeddings": vectors}

    def __call__(self, inputs, *args, **kwargs):
        # [b, k, s] ids: k texts per example, embedded as b * k rows → embeddings [b, k, d].
        if isinstance(inputs, dict) and len(getattr(inputs.get("input_ids"), "shape", ())) == 3:
            shape = ops.shape(inputs["input_ids"])
            flat = {name: ops.reshape(value, (-1, shape[2])) for name, value in inputs.items()}
            outputs = super().__call__(flat, *args, **kwargs)
            return {name: ops.reshape(value, (shape[0], shape[1], -1))
                    for name, value in outputs.items()}
        return super().__call__(inputs, *args, **kwargs)

    def head_config(self):
        return {"pooling": self.pooling, "normalize": self.normalize,
                "projection_units": self.projection_units,
                "projection_activation": self.projection_activation,
                "projection_bias": self.projection_bias}

    # ------------------------------------------------------------------ raw text
    def encode(self, texts, tokenizer=None, batch_size: int = 64):
        """Vectors (numpy float32 [n, d]) for a list of strings: [CLS] text [SEP] by the
        tokenizer (`tokenizer`, default the one `from_pretrained` found), then this model, in
        batches of similar length cut to their longest row (as sentence-transformers' `encode`
        does; padding never changes a vector). The same vectors as `bert-tf embed` and the
        exported SavedModel's `serving_default`, to float rounding."""
        import numpy as np
        tokenizer = tokenizer or self.tokenizer
        if tokenizer is None:
            raise ValueError("this model has no tokenizer: pass tokenizer= (a bert_tf.BertTokenizer "
                             "over the vocabulary it was trained with)")
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        texts = list(texts)
        vectors = np.zeros([len(texts), self.embedding_size], np.float32)
        chunk = 64 * batch_size   # tokenized at once, then sorted by length within the chunk
        for begin in range(0, len(texts), chunk):
            ids = {name: np.asarray(value) for name, value in
                   tokenizer(ops.convert_to_tensor(texts[begin:begin + chunk])).items()}
            lengths = ids["attention_mask"].sum(axis=1)                          # [c]
            order = np.argsort(-lengths, kind="stable")
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                width = max(1, int(lengths[rows].max()))
                batch = {name: value[rows, :width] for name, value in ids.items()}
                vectors[begin + rows] = np.asarray(self(batch, training=False)["embeddings"])
        return vectors

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(cls, path, *args, config=None, pooling: str | None = None,
                        normalize: bool | None = None, sequence_length: int | None = None,
                        **kwargs):
        """A sentence-transformers directory (its pooling, Dense projection, normalization and
        max_seq_length), or any encoder checkpoint `bert_tf.weights` reads (pooling "mean" and
        normalize True unless given). A vocab.txt at `path` gives the model its tokenizer
        (`sequence_length` tokens: the directory's max_seq_length, else 128)."""
        from bert_tf.models.pretrained import load_encoder
        from bert_tf.weights.sentence_transformers import (SentencePipeline,
                                                           is_sentence_transformers_dir,
                                                           read_pipeline)
        path = os.fspath(path)
        pipeline = read_pipeline(path) if is_sentence_transformers_dir(path) \
            else SentencePipeline()
        encoder = load_encoder(os.path.join(path, pipeline.encoder_path), config=config)
        projection = pipeline.projection
        model = cls(encoder, *args, pooling=pooling or pipeline.pooling,
                    normalize=pipeline.normalize if normalize is None else normalize,
                    projection_units=None if projection is None else projection.units,
                    projection_activation="tanh" if projection is None else projection.activation,
                    projection_bias=projection is None or projection.bias is not None, **kwargs)
        if projection is not None:
            if projection.kernel.shape[0] != encoder.config.hidden_size:
                raise ValueError(f"{path}: the Dense module takes {projection.kernel.shape[0]} "
                                 f"inputs but the encoder's hidden size is "
                                 f"{encoder.config.hidden_size}")
            model.projection.set_weights([projection.kernel] + (
                [projection.bias] if projection.bias is not None else []))
        vocab = os.path.join(path, pipeline.encoder_path, "vocab.txt")
        if fileio.isfile(vocab):
            model.tokenizer = _tokenizer_for(path, pipeline, vocab, sequence_length,
                                             encoder.config.max_position_embeddings)
        return model

    def save_sentence_transformers(self, directory, vocab=None, lowercase: bool | None = None,
                                   max_seq_length: int | None = None) -> str:
        """Writes a sentence-transformers directory (HF encoder files, vocab.txt, tokenizer files,
        modules.json with Pooling, Dense and Normalize as this model has them) that
        `sentence_transformers.SentenceTransformer(directory)` loads. The directory appears (or
        is replaced) whole. Defaults come from the model's tokenizer."""
        import shutil

        from bert_tf.text.vocabulary import write_vocabulary
        from bert_tf.weights.huggingface import save_pretrained
        from bert_tf.weights.sentence_transformers import (Projection, SentencePipeline,
                                                           publish_directory, write_pipeline)
        tokenizer = self.tokenizer
        if vocab is None and tokenizer is None:
            raise ValueError("pass vocab= (the vocab.txt this model was trained with)")
        lowercase = (tokenizer.lowercase if tokenizer is not None else True) \
            if lowercase is None else lowercase
        length = max_seq_length or (tokenizer.sequence_length if tokenizer is not None else None)
        projection = None
        if self.projection is not None:
            values = self.projection.get_weights()
            projection = Projection(values[0], values[1] if self.projection_bias else None,
                                    self.projection_activation)
        pipeline = SentencePipeline(self.pooling, self.normalize, projection, length)

        def write(staging):
            save_pretrained(self.encoder, staging)
            if vocab is not None:
                shutil.copyfile(vocab, os.path.join(staging, "vocab.txt"))
            else:
                write_vocabulary(list(tokenizer.get_vocabulary()),
                                 os.path.join(staging, "vocab.txt"))
            write_pipeline(staging, pipeline, self.encoder.config.hidden_size, lowercase)
        return publish_directory(write, directory)


def _tokenizer_for(path, pipeline, vocab, sequence_length, max_positions):
    """The tokenizer a sentence-transformers (or HF) directory implies: lowercasing from its
    tokenizer_config.json (default True, BERT uncased), length from max_seq_length."""
    import json

    from bert_tf.text import BertTokenizer
    lowercase = True
    config_path = os.path.join(path, pipeline.encoder_path, "tokenizer_config.json")
    if fileio.isfile(config_path):
        with fileio.open(config_path, encoding="utf-8") as f:
            lowercase = bool(json.load(f).get("do_lower_case", True))
    length = sequence_length or pipeline.max_seq_length or 128
    return BertTokenizer.from_vocab_file(vocab, lowercase=lowercase or pipeline.lowercase_input,
                                         sequence_length=min(length, max_positions))
