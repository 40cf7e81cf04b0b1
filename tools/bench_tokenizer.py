"""Benchmark: sentences/s of bert_tf's in-graph BertTokenizer vs Hugging Face's BertTokenizerFast
on the same batch of real sentences (Rotten Tomatoes + Wikipedia), with an id check.

    python tools/bench_tokenizer.py [--sentences 8192] [--batch-size 1024] [--sequence-length 128]

`run(...)` returns the results as a dict (tools/bench.py folds it in).
"""

from __future__ import annotations

import argparse
import json
import time


def _best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(num_sentences: int = 8192, batch_size: int = 1024, sequence_length: int = 128,
        repeats: int = 3, vocab_path: str | None = None) -> dict:
    import numpy as np
    import tensorflow as tf
    from transformers import BertTokenizerFast

    from bert_tf.data import corpora, fetch
    from bert_tf.text import BertTokenizer

    vocab_path = vocab_path or fetch.minilm_vocab()
    sentences = (corpora.rotten_tomatoes_sentences() + corpora.wikipedia_sentences())[:num_sentences]
    batches = [sentences[i:i + batch_size] for i in range(0, len(sentences), batch_size)]

    hf = BertTokenizerFast(vocab_path)  # positional: transformers 5 ignores vocab_file=
    if hf("Hello, my dog is cute")["input_ids"] != [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]:
        raise RuntimeError(f"{vocab_path}: Hugging Face tokenizer did not load the vocabulary")
    ours = BertTokenizer.from_vocab_file(vocab_path, sequence_length=sequence_length)
    tokenize = tf.function(ours, input_signature=[tf.TensorSpec([None], tf.string)])
    tensors = [tf.constant(b) for b in batches]

    def run_ours():
        return [tokenize(t)["input_ids"].numpy() for t in tensors]

    def run_hf():
        return [hf(b, truncation=True, max_length=sequence_length, padding="max_length",
                   return_tensors="np")["input_ids"] for b in batches]

    ours_ids, hf_ids = np.concatenate(run_ours()), np.concatenate(run_hf())  # warm-up + check
    same = int(np.all(ours_ids == hf_ids, axis=1).sum())
    ours_s, hf_s = _best_of(run_ours, repeats), _best_of(run_hf, repeats)
    return {
        "sentences": len(sentences), "batch_size": batch_size, "sequence_length": sequence_length,
        "bert_tf_sentences_per_s": len(sentences) / ours_s,
        "hf_fast_sentences_per_s": len(sentences) / hf_s,
        "ratio": hf_s / ours_s,
        "identical_ids": same, "identical_fraction": same / len(sentences),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    args = parser.parse_args(argv)
    result = run(args.sentences, args.batch_size, args.sequence_length, args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['sentences']} real sentences, batch {result['batch_size']}, "
          f"sequence length {result['sequence_length']}")
    print(f"{'tokenizer':<28}{'sentences/s':>14}")
    print(f"{'bert_tf BertTokenizer':<28}{result['bert_tf_sentences_per_s']:>14,.0f}")
    print(f"{'HF BertTokenizerFast':<28}{result['hf_fast_sentences_per_s']:>14,.0f}")
    print(f"ratio bert_tf / HF: {result['ratio']:.2f}x   identical ids: "
          f"{result['identical_ids']}/{result['sentences']} ({100 * result['identical_fraction']:.2f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
