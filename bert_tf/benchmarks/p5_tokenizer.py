"""P5 tokenizer throughput: raw real sentences -> [batch, 128] padded ids, bert_tf vs HF.

- bert_tf: `BertTokenizer` in a tf.function (printable-ASCII rows through FastBertTokenizer, the
  others through exact BERT normalization + FastWordpiece; ids exact either way).
- bert_tf fast_bert (info): the `tflite_compatible=True` path (tensorflow-text FastBertTokenizer),
  faster, with a few compatibility-mapping differences (its id agreement is reported).
- hf BertTokenizerFast: the Rust tokenizer, `padding="max_length"`, truncation, numpy out.
Sentences: Rotten Tomatoes train + test snippets, in chunks of 512 for every tokenizer.
The ids of bert_tf and HF must be identical (reported as the fraction of identical rows).
"""

from __future__ import annotations

import numpy as np

from bert_tf.benchmarks.peers import hf_tokenizer
from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.timing import BenchmarkError, alternate

CHUNK = 512
REFERENCE = ("Hello, my dog is cute", [101, 7592, 1010, 2026, 3899, 2003, 10140, 102])


def _texts(count):
    from bert_tf.data.datasets import rotten_tomatoes
    texts = [t for t, _ in rotten_tomatoes(None)][:count]
    if len(texts) < count:
        raise BenchmarkError(f"P5 asked for {count} sentences, the corpus has {len(texts)}")
    return texts


def run(vocab_path: str, sizes, log) -> list:
    import tensorflow as tf

    from bert_tf.text import BertTokenizer

    texts = _texts(sizes.p5_sentences)
    chunks = [texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)]
    seq = sizes.p5_seq
    ours = BertTokenizer.from_vocab_file(vocab_path, lowercase=True, sequence_length=seq)
    fast = BertTokenizer.from_vocab_file(vocab_path, lowercase=True, sequence_length=seq,
                                         tflite_compatible=True)
    ours_fn = tf.function(lambda t: ours(t)["input_ids"],
                          input_signature=[tf.TensorSpec([None], tf.string)])
    fast_fn = tf.function(lambda t: fast(t)["input_ids"],
                          input_signature=[tf.TensorSpec([None], tf.string)])
    hf = hf_tokenizer(vocab_path)
    hf_ids = hf([REFERENCE[0]])["input_ids"][0]
    if list(hf_ids) != REFERENCE[1]:
        raise BenchmarkError(f"HF BertTokenizerFast gives {hf_ids} for {REFERENCE[0]!r}, expected "
                             f"{REFERENCE[1]}: it did not load {vocab_path}")

    def hf_call(chunk):
        return hf(chunk, padding="max_length", truncation=True, max_length=seq,
                  return_tensors="np")["input_ids"]

    tensors = [tf.constant(c) for c in chunks]
    ours_all = np.concatenate([ours_fn(t).numpy() for t in tensors])
    fast_all = np.concatenate([fast_fn(t).numpy() for t in tensors])
    hf_all = np.concatenate([hf_call(c) for c in chunks])
    identical = float(np.mean(np.all(ours_all == hf_all, axis=1)))
    fast_identical = float(np.mean(np.all(fast_all == hf_all, axis=1)))
    log(f"P5 ids identical to HF: bert_tf {identical:.4%}, fast_bert path {fast_identical:.4%} "
        f"of {len(texts)} sentences")

    cases = {
        "bert_tf tf.function": (lambda: [ours_fn(t).numpy() for t in tensors], len(texts)),
        "bert_tf fast_bert (tflite path)": (lambda: [fast_fn(t).numpy() for t in tensors], len(texts)),
        "hf BertTokenizerFast": (lambda: [hf_call(c) for c in chunks], len(texts)),
    }
    timings = alternate(cases, sizes.warmups, sizes.repeats)
    case = f"{len(texts)} sents -> {seq} ids"
    extras = {"bert_tf tf.function": {"ids_identical": identical},
              "bert_tf fast_bert (tflite path)": {"ids_identical": fast_identical}}
    roles = {"bert_tf tf.function": "ours", "bert_tf fast_bert (tflite path)": "info",
             "hf BertTokenizerFast": "peer"}
    return [Row("P5", case, name, roles[name], "sent/s", t.throughputs(), extra=extras.get(name, {}))
            for name, t in timings.items()]
