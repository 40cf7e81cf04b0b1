"""P6 sentence embeddings: raw sentences in, unit vectors out, batches of 32.

- bert_tf export: the embedding model (all-MiniLM-L6-v2: mean pooling, unit length) exported by
  `bert_tf.export.export_saved_model` as `bert-tf export saved-model` writes it, loaded back from
  disk: in-graph tokenizer, the batch cut to its longest row, the encoder on packed real tokens,
  masked mean pooling and normalization in the graph; what stock TF Serving runs.
- bert_tf export --xla: the same with the model as one XLA function.
- bert_tf export --no-pack: the padded [batch, length] layout in length groups of 8 (each cut to
  its own longest row), to show what packing the tokens is worth.
- sentence-transformers: `SentenceTransformer(<the same directory>).encode(texts, batch_size=32)`
  (PyTorch, the same threads): its tokenizer pads to the batch's longest, sorts by length.
Sentences: Rotten Tomatoes test snippets and Wikipedia sentences, alternating. The check: every
bert_tf vector's cosine with sentence-transformers' vector of the same text (≥ 0.9999).
"""

from __future__ import annotations

import os

import numpy as np

from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.timing import BenchmarkError, alternate

MIN_COSINE = 0.9999


def embedding_sentences(n: int) -> list:
    from bert_tf.data.corpora import wikipedia_sentences
    from bert_tf.data.datasets import rotten_tomatoes
    reviews = [text for text, _ in rotten_tomatoes("test")]
    wiki = wikipedia_sentences()
    mixed = [text for pair in zip(reviews, wiki) for text in pair]
    if len(mixed) < n:
        raise BenchmarkError(f"P6 needs {n} sentences, the corpora give {len(mixed)}")
    return mixed[:n]


def model_directory(sizes, work_dir) -> str:
    """The embedded MiniLM (a sentence-transformers directory), or for the tiny size a random
    tiny model written as one."""
    if sizes.real_weights:
        from bert_tf.data.fetch import minilm_dir
        return minilm_dir()
    import keras

    from bert_tf.data.fetch import minilm_vocab
    from bert_tf.models import BertEncoder, BertSentenceEncoder
    from bert_tf.text import BertTokenizer
    keras.utils.set_random_seed(0)
    model = BertSentenceEncoder(BertEncoder(sizes.tiny_config))
    model.tokenizer = BertTokenizer.from_vocab_file(minilm_vocab(), sequence_length=128)
    return model.save_sentence_transformers(os.path.join(work_dir, "tiny_st"))


def run(sizes, work_dir, log) -> list:
    import tensorflow as tf
    from sentence_transformers import SentenceTransformer

    from bert_tf.export import export_saved_model
    from bert_tf.models import BertSentenceEncoder

    directory = model_directory(sizes, work_dir)
    texts = embedding_sentences(sizes.p6_batch * sizes.p6_batches)
    batches = [texts[i:i + sizes.p6_batch] for i in range(0, len(texts), sizes.p6_batch)]
    model = BertSentenceEncoder.from_pretrained(directory)
    paths, loaded = {}, []
    variants = {"bert_tf export": {}, "bert_tf export --xla": {"jit_compile": True},
                "bert_tf export --no-pack": {"pack": False}}
    for i, (name, options) in enumerate(variants.items()):
        saved = tf.saved_model.load(export_saved_model(
            model, os.path.join(work_dir, f"embed{i}"), tokenizer=model.tokenizer,
            write_configs=False, **options))
        loaded.append(saved)
        fn = saved.signatures["serving_default"]
        paths[name] = lambda batch, fn=fn: fn(text=tf.constant(batch))["embeddings"].numpy()
    peer = SentenceTransformer(directory, device="cpu")
    paths["sentence-transformers"] = lambda batch: peer.encode(
        batch, batch_size=sizes.p6_batch, convert_to_numpy=True)

    reference = np.concatenate([paths["sentence-transformers"](b) for b in batches])
    extras = {}
    for name in variants:
        ours = np.concatenate([paths[name](b) for b in batches])
        cosines = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1) *
                                               np.linalg.norm(reference, axis=1))
        extras[name] = {"cosine_min": float(cosines.min()), "checked": len(texts)}
        log(f"P6 vectors: {name} vs sentence-transformers, cosine min {cosines.min():.7f} over "
            f"{len(texts)} sentences")
        if cosines.min() < MIN_COSINE:
            raise BenchmarkError(f"P6: {name}'s vectors differ from sentence-transformers' "
                                 f"(cosine {cosines.min():.6f} < {MIN_COSINE})")
    cases = {name: ((lambda fn=fn: [fn(b) for b in batches]), len(texts))
             for name, fn in paths.items()}
    timings = alternate(cases, sizes.warmups, sizes.repeats)
    del loaded
    return [Row("P6", f"batch {sizes.p6_batch}", name,
                "ours" if name.startswith("bert_tf") else "peer", "sent/s",
                timing.throughputs(), extra=extras.get(name, {}))
            for name, timing in timings.items()]
