"""Vocabulary learning on a real corpus, the `bert-tf vocab` command, and the tokenize ->
detokenize round trip with a learned vocabulary."""

import pytest
import tensorflow as tf

from bert_tf.data import corpora
from bert_tf.text import BertTokenizer, read_vocabulary
from bert_tf.text.vocab_learning import VocabularyLearningError


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    # 1,500 real review snippets: a real English corpus, small enough for CI.
    sentences = corpora.rotten_tomatoes_sentences()[:1500]
    path = tmp_path_factory.mktemp("corpus") / "reviews.txt"
    path.write_text("\n".join(s.replace("\n", " ") for s in sentences) + "\n", encoding="utf-8")
    return str(path), sentences


@pytest.fixture(scope="module")
def learned_vocab(corpus_file, tmp_path_factory):
    from bert_tf.commands import vocab as vocab_command
    import argparse
    parser = argparse.ArgumentParser()
    vocab_command.register(parser.add_subparsers())
    output = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    args = parser.parse_args(["vocab", "--input", corpus_file[0], "--size", "1200",
                              "--output", output, "--unused", "3"])
    assert args.run(args) == 0
    return output


@pytest.mark.slow
def test_learned_vocab_layout(learned_vocab):
    tokens = read_vocabulary(learned_vocab)
    assert tokens[:8] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]",
                          "[unused2]"]
    assert len(tokens) == 1200  # exact unless the corpus runs out of pieces
    assert any(t.startswith("##") for t in tokens) and "the" in tokens


@pytest.mark.slow
def test_round_trip_with_learned_vocab(learned_vocab, corpus_file):
    tokenizer = BertTokenizer.from_vocab_file(learned_vocab, sequence_length=512)
    vocab = set(tokenizer.get_vocabulary())
    sentences = corpus_file[1][:300]
    ids = tokenizer(tf.constant(sentences))["input_ids"]
    decoded = [s.decode() for s in tokenizer.detokenize(ids).numpy()]
    checked = 0
    for sentence, text in zip(sentences, decoded):
        if "[UNK]" in text:
            continue  # a word the 1,200-token vocabulary cannot spell
        normalized = " ".join(_normalized_words(sentence))
        assert text == normalized
        checked += 1
    assert checked >= 250  # nearly every sentence is fully covered by the learned pieces
    assert "the" in vocab


def _normalized_words(sentence):
    from bert_tf.text.vocab_learning import _normalized_words as words_fn
    return [w.decode() for w in words_fn(tf.constant([sentence]), tf.constant(True)).numpy()]


def test_vocab_command_errors(tmp_path):
    from bert_tf.text.vocab_learning import learn_vocabulary_file
    with pytest.raises(VocabularyLearningError, match="cannot read"):
        learn_vocabulary_file([str(tmp_path / "missing.txt")], str(tmp_path / "v.txt"), 100)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    with pytest.raises(VocabularyLearningError, match="line 2: not UTF-8"):
        learn_vocabulary_file([str(bad)], str(tmp_path / "v.txt"), 100)
    ok = tmp_path / "ok.txt"
    ok.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(VocabularyLearningError, match="leaves no room"):
        learn_vocabulary_file([str(ok)], str(tmp_path / "v.txt"), 5)
    assert not (tmp_path / "v.txt").exists()  # nothing half written
