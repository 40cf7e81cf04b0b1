"""Dynamic masking: BERT's rules in the tf.data pipeline (counts, 80/10/10, whole words, sorted
positions, NSP), determinism, bucketing, and the same batch structure as the TFRecord loader."""

import os
import random
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import corpora, documents, masking, pretraining, tfrecords
# The rule checks are shared with the static data's tests (pytest runs with --import-mode=importlib).
sys.path.insert(0, os.path.dirname(__file__))
from test_pretraining_data import assert_80_10_10, check_batches, rotten_tomatoes_movies


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("corpus") / "movies.txt")
    documents.write_documents(rotten_tomatoes_movies(60), path)
    return path


@pytest.fixture(scope="module")
def token_documents(corpus, minilm_vocab):
    vocab = documents.read_vocab(minilm_vocab)
    pieces = documents.tokenize_documents(documents.read_documents(corpus),
                                          documents.wordpiece_fn(minilm_vocab))
    return [[[vocab[p] for p in sentence] for sentence in doc] for doc in pieces], list(vocab)


def take(dataset, n):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(n)]


def test_dynamic_masking_follows_berts_rules(corpus, minilm_vocab):
    words = list(documents.read_vocab(minilm_vocab))
    dataset = masking.dynamic_masking_dataset([corpus], minilm_vocab, 64, 128, 20, seed=1)
    batches = take(dataset, 10)  # 640 sequences, ~12k predictions
    kinds, predictions, sequences, _ = check_batches(batches, words, whole_word_mask=False)
    assert sequences == 640
    assert_80_10_10(kinds, predictions)
    labels = np.concatenate([b["next_sentence_labels"] for b in batches])
    assert 0.45 < labels.mean() < 0.65

    # The same structure as the static loader's batches (keys, dtypes, static shapes: a fixed
    # batch size with drop_remainder).
    static = {k: (v.dtype, v.shape.as_list()) for k, v in dataset.element_spec.items()}
    assert static == {
        "input_ids": (tf.int32, [64, 128]), "token_type_ids": (tf.int32, [64, 128]),
        "attention_mask": (tf.int32, [64, 128]), "masked_lm_positions": (tf.int32, [64, 20]),
        "masked_lm_ids": (tf.int32, [64, 20]), "masked_lm_weights": (tf.float32, [64, 20]),
        "next_sentence_labels": (tf.int32, [64])}
    assert set(static) == set(tfrecords.MODEL_INPUT_KEYS + tfrecords.TARGET_KEYS)


def test_whole_word_masking_with_buckets(token_documents):
    docs, words = token_documents
    dataset = masking.dynamic_masking_dataset_from_documents(
        docs, words, 64, 128, 20, seed=2, whole_word_mask=True, bucket_boundaries=[32, 64])
    batches = take(dataset, 12)
    kinds, predictions, sequences, full = check_batches(batches, words, whole_word_mask=True)
    assert_80_10_10(kinds, predictions)
    assert full / sequences > 0.9
    widths = {b["input_ids"].shape[1] for b in batches}
    assert widths <= {32, 64, 128} and len(widths) >= 2
    for b in batches:
        longest = b["attention_mask"].sum(axis=1).max()
        width = b["input_ids"].shape[1]
        assert longest <= width and (width == 32 or longest > {64: 32, 128: 64}[width])


@pytest.mark.slow
def test_same_seed_same_batches(token_documents):
    docs, words = token_documents

    def first(seed):
        return take(masking.dynamic_masking_dataset_from_documents(docs, words, 16, 64, 10,
                                                                   seed=seed), 3)

    a, b, c = first(5), first(5), first(6)
    assert all((x[k] == y[k]).all() for x, y in zip(a, b) for k in x)
    assert not all((x["input_ids"] == y["input_ids"]).all() for x, y in zip(a, c))


def test_selector_count_and_whole_word_budget():
    """The count is google's `min(max, max(1, round(len * prob)))` for every length, and with whole
    words no unchosen word would still have fitted (google's skip-and-continue loop)."""
    rng = random.Random(0)
    lengths = list(range(5, 129))
    rows = [[101] + [rng.randint(1000, 2000) for _ in range(n - 2)] + [102] for n in lengths]
    ids = tf.ragged.constant(rows, dtype=tf.int32)
    selector = masking.BertItemSelector(20, 0.15, [101, 102], tf.constant([1, 2], tf.int64))
    chosen = selector.get_selection_mask(ids, axis=1).numpy()
    for n, row in zip(lengths, chosen):
        assert row.sum() == pretraining.num_to_predict(n, 0.15, 20)
        assert not row[0] and not row[-1]

    # Words of 1-4 pieces: [b, (words), (pieces)].
    word_rows = [[[101]] + [[7] * rng.randint(1, 4) for _ in range(rng.randint(3, 40))] + [[102]]
                 for _ in range(200)]
    words = tf.ragged.constant(word_rows, dtype=tf.int32, ragged_rank=2)
    for seed in range(3):
        selector = masking.BertItemSelector(20, 0.15, [101, 102], tf.constant([seed, 9], tf.int64))
        chosen = selector.get_selection_mask(words, axis=1).to_list()
        for row, taken in zip(word_rows, chosen):
            sizes = [len(w) for w in row]
            budget = pretraining.num_to_predict(sum(sizes), 0.15, 20)
            used = sum(s for s, t in zip(sizes, taken) if t)
            assert 0 <= used <= budget and not taken[0] and not taken[-1]
            assert all(s > budget - used for s, t in zip(sizes[1:-1], taken[1:-1]) if not t)


@pytest.mark.slow
def test_nsp_random_fraction_on_wikipedia(minilm_vocab, tmp_path):
    """Long real documents (Wikipedia articles): the random-next fraction is the 50% coin. (With
    short_seq_prob > 0, google's rule adds forced random nexts for single-sentence chunks.)"""
    path = str(tmp_path / "wiki.txt")
    documents.write_documents([text for _, text in corpora.wikipedia_articles()[:40]], path)
    pieces = documents.tokenize_documents(documents.read_documents(path),
                                          documents.wordpiece_fn(minilm_vocab))
    options = pretraining.PretrainingOptions(short_seq_prob=0.0, dupe_factor=3, random_seed=3)
    instances = pretraining.create_instances_for_files(
        [pieces], list(documents.read_vocab(minilm_vocab)), options)
    assert len(instances) > 3000
    fraction = sum(i.is_random_next for i in instances) / len(instances)
    assert abs(fraction - 0.5) < 0.02, fraction

    dataset = masking.dynamic_masking_dataset([path], minilm_vocab, 128, 128, 20, short_seq_prob=0.0,
                                              seed=4)
    labels = np.concatenate([b["next_sentence_labels"] for b in take(dataset, 25)])
    assert abs(labels.mean() - 0.5) < 0.03, labels.mean()  # 3,200 pairs: ±3 standard errors
