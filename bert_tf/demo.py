"""The main job on the embedded default: real MiniLM-L6 weights, in-graph tokenizer, real sentences.

Loads the pinned all-MiniLM-L6-v2 package (no hub), tokenizes with `BertTokenizer` in-graph, runs
`BertEncoder`, and reports sentence embeddings and their cosine similarities.
"""

from __future__ import annotations

import os

import numpy as np

DEFAULT_SENTENCES = (
    "A gripping, beautifully acted film that stays with you.",
    "One of the most moving movies of the year, superbly performed.",
    "The plot is a mess and the jokes fall flat.",
    "Tedious, overlong and badly written.",
    "The central bank raised interest rates by a quarter point.",
)


def sentence_similarities(sentences=DEFAULT_SENTENCES, model_dir: str | None = None,
                          sequence_length: int = 64) -> dict:
    """Embeds `sentences` with MiniLM-L6 (or the HF/google/KerasHub model at `model_dir`)."""
    from bert_tf.data.fetch import minilm_dir
    from bert_tf.models import BertEncoder
    from bert_tf.models.sentence_embedding import mean_pool
    from bert_tf.text import BertTokenizer

    sentences = list(sentences)
    if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
        raise ValueError("sentence_similarities needs at least one non-empty sentence")
    model_dir = model_dir or minilm_dir()
    vocab = os.path.join(model_dir, "vocab.txt")
    if not os.path.isfile(vocab):
        raise FileNotFoundError(f"{model_dir} has no vocab.txt for the tokenizer")
    tokenizer = BertTokenizer.from_vocab_file(vocab, lowercase=True, sequence_length=sequence_length)
    encoder = BertEncoder.from_pretrained(model_dir)
    features = tokenizer(sentences)
    outputs = encoder(features)
    embeddings = np.asarray(mean_pool(outputs["sequence_output"], features["attention_mask"]))
    return {"sentences": sentences, "input_ids": np.asarray(features["input_ids"]),
            "embeddings": embeddings, "similarities": embeddings @ embeddings.T,
            "pooled_output": np.asarray(outputs["pooled_output"])}


def format_report(result: dict) -> str:
    lines = ["Sentence embeddings (MiniLM-L6, mean pooling, unit length):"]
    for i, (sentence, vector) in enumerate(zip(result["sentences"], result["embeddings"])):
        tokens = int((result["input_ids"][i] != 0).sum())
        head = " ".join(f"{v:+.4f}" for v in vector[:4])
        lines.append(f"  [{i}] {tokens:3d} tokens  [{head} ...]  {sentence}")
    lines.append("Cosine similarities:")
    n = len(result["sentences"])
    lines.append("      " + "".join(f"{f'[{j}]':>8}" for j in range(n)))
    for i in range(n):
        lines.append(f"  [{i}] " + "".join(f"{result['similarities'][i, j]:8.3f}" for j in range(n)))
    best = max(((i, j) for i in range(n) for j in range(i + 1, n)),
               key=lambda ij: result["similarities"][ij], default=None)
    if best:
        lines.append(f"Most similar pair: [{best[0]}] and [{best[1]}] "
                     f"({result['similarities'][best]:.3f})")
    return "\n".join(lines)
