"""BertTokenizer unit tests: reference ids, packing, offsets, lookups, serialization, tf.data /
tf.function, errors. HF parity on real corpora is in test_tokenizer_parity.py."""

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import fetch
from bert_tf.text import BertTokenizer, VocabularyError

REFERENCE_SENTENCE = "Hello, my dog is cute"
REFERENCE_IDS = [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]


@pytest.fixture(scope="module")
def vocab_path():
    return fetch.minilm_vocab()


@pytest.fixture(scope="module")
def tokenizer(vocab_path):
    return BertTokenizer.from_vocab_file(vocab_path, sequence_length=16)


@pytest.fixture(scope="module")
def hf(vocab_path):
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast(vocab_path)  # positional: transformers 5 ignores vocab_file=
    assert tok(REFERENCE_SENTENCE)["input_ids"] == REFERENCE_IDS
    return tok


def test_reference_sentence(tokenizer):
    out = tokenizer([REFERENCE_SENTENCE])
    assert out["input_ids"].numpy()[0, :8].tolist() == REFERENCE_IDS
    assert out["input_ids"].numpy()[0, 8:].tolist() == [0] * 8
    assert out["attention_mask"].numpy()[0].tolist() == [1] * 8 + [0] * 8
    assert out["token_type_ids"].numpy().sum() == 0
    for value in out.values():
        assert value.dtype == tf.int32 and value.shape == (1, 16)
    # A scalar string gives one unbatched row.
    assert tokenizer(REFERENCE_SENTENCE)["input_ids"].shape == (16,)


def test_pair_packing_matches_hf(tokenizer, hf):
    a = ["Hello, my dog is cute", "a b c d e f", "short"]
    b = ["How are you?", "g h i j k l m", "a much longer second segment with many many words in it"]
    out = tokenizer((tf.constant(a), tf.constant(b)))
    expected = hf(a, b, truncation="longest_first", max_length=16, padding="max_length",
                  return_tensors="np")
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(out[name].numpy(), expected[name])
    # An odd budget (13) with both segments cut and the first shorter: the documented difference.
    a, b = ["one two three four five six seven eight"], ["a b c d e f g h i j"]
    bert_rule = tokenizer((tf.constant(a), tf.constant(b)))["input_ids"].numpy()[0].tolist()
    hf_ids = hf(a, b, truncation="longest_first", max_length=16)["input_ids"][0]
    assert bert_rule.index(102) == 1 + 7 and hf_ids.index(102) == 1 + 6
    hf_rule = BertTokenizer.from_vocab_file(fetch.minilm_vocab(), sequence_length=16,
                                            pair_truncation="huggingface")
    assert hf_rule((tf.constant(a), tf.constant(b)))["input_ids"].numpy()[0].tolist() == hf_ids


def test_bert_truncation_rule_is_google_truncate_seq_pair(vocab_path):
    """Closed-form trimming equals google-research/bert's loop for every length combination."""
    from bert_tf.text.packing import truncated_pair_lengths

    def truncate_seq_pair(la, lb, budget):  # the loop from google-research/bert, on lengths
        while la + lb > budget:
            if la > lb:
                la -= 1
            else:
                lb -= 1
        return la, lb

    for budget in (5, 6, 13):
        grid = np.array([(la, lb) for la in range(20) for lb in range(20)], dtype=np.int32)
        ka, kb = truncated_pair_lengths(tf.constant(grid[:, 0]), tf.constant(grid[:, 1]), budget)
        expected = [truncate_seq_pair(la, lb, budget) for la, lb in grid]
        assert list(zip(ka.numpy().tolist(), kb.numpy().tolist())) == expected


def test_single_truncation_and_long_words(tokenizer, hf):
    text = "word " * 40 + "x" * 101 + " " + "y" * 100
    out = tokenizer([text])["input_ids"].numpy()[0]
    assert out[0] == 101 and out[-1] == 102 and len(out) == 16
    assert out.tolist() == hf(text, truncation=True, max_length=16)["input_ids"]
    long_words = tokenizer.tokenize(["x" * 101 + " " + "y" * 100]).to_list()[0]
    assert long_words[0] == [tokenizer.unk_id] and len(long_words[1]) > 1


def test_offsets_and_whole_words(tokenizer, hf):
    text = "Naïve café: unaffable ΟΔΟΣ\u00ad中文 x\x07y!"
    result = tokenizer.tokenize_with_offsets([text])
    ids = result["token_ids"].to_list()[0]
    assert [i for word in ids for i in word] == hf(text, add_special_tokens=False)["input_ids"]
    raw = text.encode("utf-8")
    starts = result["start_offsets"].to_list()[0]
    ends = result["end_offsets"].to_list()[0]
    pieces = [[(tokenizer.id_to_token(i), raw[s:e].decode()) for i, s, e in zip(*w)]
              for w in zip(ids, starts, ends)]
    # Each piece maps back to the original characters it came from (accents, case and all).
    assert pieces[0] == [("naive", "Naïve")]
    assert all(text == token.lstrip("#") for token, text in pieces[3])  # "unaffable"
    assert [p for _, p in pieces[4]] == ["Ο", "Δ", "Ο", "Σ"]
    assert [p for _, p in pieces[5]] == ["中"]
    assert [p for _, p in pieces[7]] == ["x", "y"]  # the dropped BEL belongs to no piece...
    words = [raw[s:e].decode() for s, e in zip(result["word_start_offsets"].to_list()[0],
                                                result["word_end_offsets"].to_list()[0])]
    assert words == ["Naïve", "café", ":", "unaffable", "ΟΔΟΣ\u00ad", "中", "文", "x\x07y", "!"]
    # HF's character offsets agree with ours at word level (converted from bytes).
    enc = hf(text, add_special_tokens=False, return_offsets_mapping=True)
    ours = [(len(raw[:s].decode()), len(raw[:e].decode()))
            for w in zip(starts, ends) for s, e in zip(*w)]
    assert [o[0] for o in ours] == [o[0] for o in enc["offset_mapping"]]
    # Packed offsets line up with input_ids; specials are -1.
    packed = tokenizer([text], return_offsets=True)
    assert packed["start_offsets"].numpy()[0, 0] == -1
    assert packed["word_ids"].numpy()[0, 1:4].tolist() == [0, 1, 2]
    assert packed["start_offsets"].numpy()[0, 1:3].tolist() == [starts[0][0], starts[1][0]]


def test_detokenize_and_lookups(tokenizer):
    ids = tokenizer(["Hello, my dog is cute", "Naïve CAFÉ"])["input_ids"]
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"hello , my dog is cute", b"naive cafe"]
    assert tokenizer.vocabulary_size() == 30522
    assert tokenizer.id_to_token(7592) == "hello" and tokenizer.token_to_id("[MASK]") == 103
    assert tokenizer.ids_to_tokens(tf.constant([101, 102])).numpy().tolist() == [b"[CLS]", b"[SEP]"]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.id_to_token(30522)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("no-such-token")


def test_in_tf_function_and_dataset_map(tokenizer):
    texts = ["Hello, my dog is cute", "中文 text", ""]
    eager = tokenizer(tf.constant(texts))["input_ids"].numpy()
    traced = tf.function(lambda x: tokenizer(x))(tf.constant(texts))["input_ids"].numpy()
    np.testing.assert_array_equal(eager, traced)
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(tokenizer)
    np.testing.assert_array_equal(np.concatenate([b["input_ids"].numpy() for b in ds]), eager)
    # Unbatched elements (scalars) too.
    ds = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer)
    np.testing.assert_array_equal(np.stack([b["input_ids"].numpy() for b in ds]), eager)
    pairs = tf.data.Dataset.from_tensor_slices((texts, texts)).batch(3).map(lambda a, b: tokenizer((a, b)))
    assert next(iter(pairs))["token_type_ids"].numpy()[0].sum() == 7  # "hello , my dog is cute [SEP]"


def test_config_round_trip_and_keras_file(tokenizer, tmp_path):
    import keras
    config = tokenizer.get_config()
    assert len(config["vocabulary"]) == 30522
    clone = BertTokenizer.from_config(config)
    np.testing.assert_array_equal(clone([REFERENCE_SENTENCE])["input_ids"],
                                  tokenizer([REFERENCE_SENTENCE])["input_ids"])
    # The vocabulary travels with the serialized layer (no vocab.txt needed to rebuild it).
    import json
    blob = json.loads(json.dumps(keras.saving.serialize_keras_object(tokenizer)))
    restored = keras.saving.deserialize_keras_object(blob)
    assert isinstance(restored, BertTokenizer)
    assert restored.get_config() == config
    np.testing.assert_array_equal(restored([REFERENCE_SENTENCE])["input_ids"],
                                  tokenizer([REFERENCE_SENTENCE])["input_ids"])


def test_bad_inputs_raise_one_clear_error(vocab_path, tmp_path, tokenizer):
    with pytest.raises(VocabularyError, match="not found"):
        BertTokenizer.from_vocab_file(str(tmp_path / "missing.txt"))
    bad = tmp_path / "dup.txt"
    bad.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nhello\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="line 7: token 'hello' duplicates line 6"):
        BertTokenizer.from_vocab_file(str(bad))
    no_mask = tmp_path / "nomask.txt"
    no_mask.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"special token '\[MASK\]'"):
        BertTokenizer.from_vocab_file(str(no_mask))
    with pytest.raises(ValueError, match="sequence_length"):
        BertTokenizer.from_vocab_file(vocab_path, sequence_length=2)
    with pytest.raises(ValueError, match="pair_truncation"):
        BertTokenizer.from_vocab_file(vocab_path, pair_truncation="random")
    with pytest.raises(ValueError, match="takes strings"):
        tokenizer(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        tokenizer(tf.constant([["a", "b"]]))
    with pytest.raises(ValueError, match="room"):
        BertTokenizer.from_vocab_file(vocab_path, sequence_length=4)((tf.constant(["a"]), tf.constant(["b"])))
