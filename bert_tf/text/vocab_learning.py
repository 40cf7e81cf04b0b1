"""Learning a WordPiece vocabulary for a new corpus or language.

Words are produced by the tokenizer's own in-graph normalization and splitting (so the learned
pieces are exactly what `BertTokenizer` will look up), counted, and handed to tensorflow-text's BERT
vocabulary learner (`wordpiece_tokenizer_learner_lib.learn`: a binary search over a frequency
threshold for the top-down WordPiece algorithm). The result starts with the special tokens
([PAD] [UNK] [CLS] [SEP] [MASK]), then optional reserved `[unused0]`... slots, then the learned pieces.
"""

from __future__ import annotations

import collections

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from bert_tf.text import normalization
from bert_tf.text.vocabulary import SpecialTokens, check_vocabulary, write_vocabulary


class VocabularyLearningError(ValueError):
    """The corpus or the options cannot produce a vocabulary."""


@tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.bool)])
def _normalized_words(text, lowercase):
    text = normalization.to_valid_utf8(text)

    def words(lower: bool):
        raw, _, _ = normalization.split_words_with_offsets(text, lower)
        return normalization.normalize_words(raw.flat_values, lower)

    flat = tf.cond(lowercase, lambda: words(True), lambda: words(False))
    return tf.boolean_mask(flat, tf.strings.length(flat) > 0)


def count_words(texts, lowercase: bool = True, batch_size: int = 1024) -> collections.Counter:
    """Normalized word counts of an iterable of strings (one document or sentence each)."""
    counts = collections.Counter()
    batch = []

    def flush():
        if batch:
            counts.update(_normalized_words(tf.constant(batch), tf.constant(lowercase)).numpy())
            batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    flush()
    return collections.Counter({word.decode("utf-8"): n for word, n in counts.items()})


def reserved_tokens(special_tokens: SpecialTokens | None = None, num_unused: int = 0) -> list:
    if num_unused < 0:
        raise VocabularyLearningError(f"num_unused must be >= 0, got {num_unused}")
    special_tokens = special_tokens or SpecialTokens()
    return special_tokens.as_list() + [f"[unused{i}]" for i in range(num_unused)]


def learn_vocabulary(texts, vocab_size: int, lowercase: bool = True, num_unused: int = 0,
                     special_tokens: SpecialTokens | None = None, lower_thresh: int = 2,
                     max_token_length: int = 50, max_unique_chars: int = 1000,
                     num_iterations: int = 4) -> list:
    """Learns a WordPiece vocabulary of at most `vocab_size` tokens (the learner's binary search
    aims for within 5% below it) from an iterable of strings."""
    reserved = reserved_tokens(special_tokens, num_unused)
    if vocab_size <= len(reserved):
        raise VocabularyLearningError(f"vocab_size={vocab_size} leaves no room for word-pieces after "
                                      f"{len(reserved)} special/reserved tokens")
    counts = count_words(texts, lowercase)
    if not counts:
        raise VocabularyLearningError("the corpus contains no words")
    vocab = learner.learn(counts, vocab_size, reserved, lower_thresh=lower_thresh,
                          max_token_length=max_token_length, max_unique_chars=max_unique_chars,
                          num_iterations=num_iterations)
    if vocab[:len(reserved)] != reserved:
        # The learner keeps reserved tokens first; check rather than trust.
        vocab = reserved + [t for t in vocab if t not in set(reserved)]
    check_vocabulary(vocab, source="learned vocabulary", special_tokens=special_tokens or SpecialTokens())
    return vocab


def read_text_lines(paths):
    """Yields the non-empty lines of UTF-8 text files; a decoding error names file and line."""
    for path in paths:
        try:
            f = open(path, "rb")  # decoded line by line so an error names the right line
        except OSError as e:
            raise VocabularyLearningError(f"{path}: cannot read ({e.strerror})") from None
        with f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    raise VocabularyLearningError(
                        f"{path}: line {line_number}: not UTF-8 text ({e.reason})") from None
                if line:
                    yield line


def learn_vocabulary_file(input_paths, output_path: str, vocab_size: int, **kwargs) -> list:
    """Learns from text files (one sentence or document per line) and writes vocab.txt atomically."""
    if not input_paths:
        raise VocabularyLearningError("no input files given")
    vocab = learn_vocabulary(read_text_lines(input_paths), vocab_size, **kwargs)
    write_vocabulary(vocab, output_path)
    return vocab
