"""Fuzzing BertTokenizer with hypothesis: random Unicode, ASCII, invalid UTF-8 bytes, empty and huge
strings never crash, the outputs always have shape [batch, sequence_length] with ids in range, and
`call` (FastBertTokenizer for printable-ASCII rows, the exact path for the others) gives exactly
the ids of the exact ragged path."""

import string

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert_tf.data import fetch
from bert_tf.text import BertTokenizer

SEQUENCE_LENGTH = 24


@pytest.fixture(scope="module")
def tokenizers():
    vocab = fetch.minilm_vocab()
    exact = BertTokenizer.from_vocab_file(vocab, sequence_length=SEQUENCE_LENGTH)
    cased = BertTokenizer.from_vocab_file(vocab, lowercase=False, sequence_length=SEQUENCE_LENGTH)
    lite = BertTokenizer.from_vocab_file(vocab, sequence_length=SEQUENCE_LENGTH,
                                         tflite_compatible=True)
    # One trace per tokenizer; hypothesis then feeds batches of any size.
    return [(t, tf.function(lambda a, b, t=t: (t(a), t((a, b)), t.tokenize_with_offsets(a)),
                            input_signature=[tf.TensorSpec([None], tf.string)] * 2))
            for t in (exact, cased, lite)]


def check_same_as_exact_path(tokenizer, packed, ragged_ids):
    """Packed single-segment ids == [CLS] + the exact path's pieces (cut to fit) + [SEP]."""
    for row, pieces in zip(packed.numpy(), ragged_ids.merge_dims(1, 2).to_list()):
        pieces = pieces[:SEQUENCE_LENGTH - 2]
        expected = [tokenizer.cls_id, *pieces, tokenizer.sep_id]
        assert row[:len(expected)].tolist() == expected


def check(tokenizer, fn, texts):
    batch = tf.constant(texts, dtype=tf.string)
    single, pair, ragged = fn(batch, tf.reverse(batch, [0]))
    for out in (single, pair):
        for name, value in out.items():
            assert value.shape == (len(texts), SEQUENCE_LENGTH), name
        ids = out["input_ids"].numpy()
        assert ids.min() >= 0 and ids.max() < tokenizer.vocabulary_size()
        assert (ids[:, 0] == tokenizer.cls_id).all()
        assert (out["attention_mask"].numpy().sum(axis=1) >= 2).all()
    if not tokenizer.tflite_compatible:
        check_same_as_exact_path(tokenizer, single["input_ids"], ragged["token_ids"])
    starts = ragged["start_offsets"].flat_values.numpy()
    ends = ragged["end_offsets"].flat_values.numpy()
    assert (starts <= ends).all() and (starts >= 0).all()


unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
raw_bytes = st.binary(max_size=200)
ascii_text = st.one_of(st.text(alphabet=string.printable, max_size=200),  # the fast path
                       st.text(alphabet=st.characters(max_codepoint=127), max_size=200))


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(unicode_text, raw_bytes, ascii_text), min_size=6, max_size=16))
def test_random_strings_never_crash(tokenizers, texts):
    for tokenizer, fn in tokenizers:
        check(tokenizer, fn, texts)


def test_edge_strings(tokenizers):
    texts = ["", " ", "\x00", b"\xff\xfe\x80", "".join(map(chr, range(128))), "a\x7fb\x0bc\x0cd",
             string.punctuation, "A" * 101, "a" * 100_000, ("word " * 20_000),
             "中" * 50_000, "\u0301" * 1000, "💩" * 5000, b"\xc3(" * 10]
    for tokenizer, fn in tokenizers:
        check(tokenizer, fn, texts)
