"""Embedding many texts, and brute-force cosine search over an embedded corpus.

`embed_texts` runs the exported SavedModel's `serving_default` function (the embed task's one
inference path, with the export's exact fast model run: padding cut, tokens packed) in batches,
with a progress bar, so `bert-tf embed` writes the vectors the server answers. `CorpusIndex` embeds a corpus file once and caches the vectors
beside it (`<corpus>.bert-tf-vectors.npz`); the cache is reused only while it matches both the
corpus (sha256 of the file) and the model (the vectors it gives two probe texts, and its
sequence length), so an edited corpus or another model never reads stale vectors. A query is
then one matrix product: [q, d] · [d, n] → top k per query.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import weakref

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf.atomic import write_bytes_atomic

CACHE_SUFFIX = ".bert-tf-vectors.npz"
CACHE_VERSION = 1
_PROBES = ["bert_tf index probe: the quick brown fox.", "Zweite Probe, 第二个探针."]


class SearchError(ValueError):
    """A search that cannot run (empty corpus or query, bad k); the message says which."""


def embed_texts(task, model, texts, batch_size: int = 64, progress: bool = False,
                description: str = "embedding") -> np.ndarray:
    """float32 [n, d] vectors of `texts` through the task's traced serving function."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    texts = list(texts)
    serve = _serving_function(task, model)
    parts = []
    from tqdm.auto import tqdm
    with tqdm(total=len(texts), unit="text", desc=description, disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            batch = tf.constant(texts[start:start + batch_size], tf.string)
            parts.append(np.asarray(serve(batch)["embeddings"], np.float32))
            bar.update(len(parts[-1]))
    if not parts:
        return np.zeros([0, model.embedding_size], np.float32)
    return np.concatenate(parts, axis=0)


@dataclasses.dataclass
class Hit:
    rank: int
    line: int       # the corpus line (1-based)
    text: str
    score: float    # cosine similarity

    def as_dict(self) -> dict:
        return {"rank": self.rank, "line": self.line, "text": self.text,
                "score": round(self.score, 6)}


class CorpusIndex:
    """The non-blank lines of a UTF-8 text file and their unit vectors [n, d]."""

    def __init__(self, texts: list, lines: list, vectors: np.ndarray):
        self.texts, self.lines, self.vectors = texts, lines, vectors

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def build(cls, path: str, task, model, batch_size: int = 64, progress: bool = True,
              use_cache: bool = True) -> "CorpusIndex":
        """Reads the corpus (one document per line; blank lines are skipped), embeds it or reads
        the cached vectors when they match, and writes the cache (atomically) after embedding."""
        path = os.fspath(path)
        if not fileio.isfile(path):
            raise SearchError(f"--index {path}: no such file")
        with fileio.open(path, "rb") as f:
            raw = f.read()
        try:
            content = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SearchError(f"{path}: not UTF-8 ({e})") from None
        numbered = [(n, line.rstrip("\r")) for n, line in enumerate(content.split("\n"), 1)
                    if line.strip()]
        if not numbered:
            raise SearchError(f"{path}: the corpus is empty (no non-blank lines to search)")
        lines, texts = [n for n, _ in numbered], [t for _, t in numbered]
        key = {"corpus_sha256": hashlib.sha256(raw).hexdigest(),
               "sequence_length": task.tokenizer.sequence_length}
        probes = embed_texts(task, model, _PROBES)
        cache = path + CACHE_SUFFIX
        if use_cache and fileio.isfile(cache):
            vectors = _read_cache(cache, key, probes, len(texts))
            if vectors is not None:
                return cls(texts, lines, vectors)
        vectors = embed_texts(task, model, texts, batch_size, progress, "embedding the corpus")
        if use_cache:
            buffer = io.BytesIO()
            np.savez(buffer, version=np.int64(CACHE_VERSION), vectors=vectors, probes=probes,
                     corpus_sha256=np.str_(key["corpus_sha256"]),
                     sequence_length=np.int64(key["sequence_length"]))
            write_bytes_atomic(cache, buffer.getvalue())
        return cls(texts, lines, vectors)

    def search(self, query_vectors: np.ndarray, k: int = 10) -> list:
        """[q, d] query vectors → q lists of the top-k `Hit`s by cosine (ties: earlier line)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SearchError(f"-k must be a positive integer, got {k!r}")
        corpus = _unit(self.vectors)
        scores = _unit(np.asarray(query_vectors, np.float32)) @ corpus.T                # [q, n]
        k = min(k, len(self))
        results = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            top = top[np.lexsort((top, -row[top]))]   # by score, then by line
            results.append([Hit(rank + 1, self.lines[i], self.texts[i], float(row[i]))
                            for rank, i in enumerate(top)])
        return results


# model -> (task, the SavedModel's serving_default function): traced once per model.
_SERVING = weakref.WeakKeyDictionary()


def _serving_function(task, model):
    from bert_tf.export.serving_module import BertServingModule
    cached = _SERVING.get(model)
    if cached is None or cached[0] is not task:
        cached = _SERVING[model] = (task, BertServingModule(model, task).serving_default)
    return cached[1]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _read_cache(cache: str, key: dict, probes: np.ndarray, count: int):
    """The cached vectors if the cache belongs to this corpus and model, else None (a damaged or
    foreign cache is rebuilt, never trusted)."""
    try:
        with np.load(cache, allow_pickle=False) as data:
            if int(data["version"]) != CACHE_VERSION \
                    or str(data["corpus_sha256"]) != key["corpus_sha256"] \
                    or int(data["sequence_length"]) != key["sequence_length"]:
                return None
            cached_probes, vectors = data["probes"], data["vectors"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if cached_probes.shape != probes.shape or vectors.shape != (count, probes.shape[1]) \
            or not np.allclose(cached_probes, probes, atol=1e-5):
        return None
    return vectors.astype(np.float32)
