"""`BertTokenizer`: BERT's WordPiece tokenization as a Keras layer made of TensorFlow graph ops.

    tokenizer = BertTokenizer.from_vocab_file("vocab.txt", lowercase=True, sequence_length=128)
    features = tokenizer(["Hello, my dog is cute"])          # or tokenizer((questions, contexts))
    features["input_ids"]       # int32 [batch, 128]: [CLS] hello , my dog is cute [SEP] [PAD] ...
    features["token_type_ids"]  # int32 [batch, 128]: 0 for segment a, 1 for segment b
    features["attention_mask"]  # int32 [batch, 128]: 1 for real tokens, 0 for padding

Everything is in-graph (no Python tokenization): the layer runs eagerly, inside `tf.function`,
inside `tf.data.Dataset.map`, in an exported SavedModel (needs only `import tensorflow_text`) and,
with `tflite_compatible=True`, in a TFLite model (see below).

Normalization follows BERT exactly (see `bert_tf.text.normalization`): control characters dropped,
whitespace split, punctuation and CJK ideographs split off, and for uncased vocabularies NFD + accent
stripping + lowercasing; then WordPiece with tensorflow-text's FastWordpieceTokenizer (longest match
first, "##" continuation pieces, [UNK] for words that cannot be split or have more than
`max_chars_per_word` characters). Ids equal Hugging Face's `BertTokenizer` (see tests).

Speed: `call` sends rows of printable ASCII to tensorflow-text's FastBertTokenizer (two fused ops,
much faster than the regex + ICU path; see docs/results.md), where it computes exactly BERT's ids,
and only the other rows through the exact path; the parity tests run `call` too.

Lower-level API (for QA/NER alignment and whole-word masking), ragged, before packing:

    tokenizer.tokenize(text)  -> int32 RaggedTensor [batch, (words), (pieces)]
    tokenizer.tokenize_with_offsets(text) -> dict of RaggedTensors:
        "token_ids"     int32 [batch, (words), (pieces)]
        "start_offsets" int64 [batch, (words), (pieces)]  byte offset where the piece starts in
        "end_offsets"   int64 [batch, (words), (pieces)]  the input string (end exclusive)
        "word_start_offsets", "word_end_offsets"  int64 [batch, (words)]  each word's span

  The word dimension is the whole-word information: a piece starts a word iff it is the first of
  its row (`ids.merge_dims(1, 2)` flattens to [batch, (pieces)]; `ids.row_lengths(axis=2)` gives the
  pieces per word). Offsets are bytes of the UTF-8 input (`text.encode()[start:end]`); a piece's
  span covers the original characters it came from (accents, dropped control characters and all).
  `tokenizer(text, return_offsets=True)` adds packed versions aligned with `input_ids`:
  "start_offsets", "end_offsets" and "word_ids" (the word's index within its segment), all -1 at
  [CLS]/[SEP]/[PAD].

TFLite: TFLite's tensorflow-text custom ops include FastBertNormalize and FastWordpieceTokenize
but no regex or ICU normalization ops. With `tflite_compatible=True`, `call` uses those two ops
(tensorflow-text's FastBertTokenizer) instead. That normalizer also applies compatibility mappings
BERT does not ("…" -> "...", "½" -> "1⁄2", fullwidth -> ASCII), and its word-length limit counts
bytes, not characters, so a few sentences get different ids; the tests measure the rate. The ragged methods always use the exact path.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf.text import normalization
from bert_tf.text.packing import PAIR_TRUNCATION_RULES, pack
from bert_tf.text.vocabulary import SpecialTokens, check_vocabulary, read_vocabulary

# A row the fast path tokenizes exactly: printable ASCII and BERT's three ASCII whitespace controls.
ASCII_ROW_PATTERN = r"[\x20-\x7e\t\n\r]*"


@keras.saving.register_keras_serializable(package="bert_tf")
class BertTokenizer(keras.layers.Layer):
    """Strings (or a pair of string tensors) -> BERT input dict; see the module docstring.

    Args:
      vocabulary: list of WordPiece tokens (id = position), or the path of a vocab.txt.
      lowercase: True for uncased vocabularies (NFD, strip accents, lowercase); False for cased.
      sequence_length: length of every output row, special tokens included.
      max_chars_per_word: longer words (after normalization) become a single [UNK], as in BERT.
      pair_truncation: "bert" (google-research/bert `truncate_seq_pair`) or "huggingface"; they
        differ only in which segment keeps the odd piece of an odd budget (see `packing`).
      tflite_compatible: make `call` use only ops TFLite's tensorflow-text registrar has.
      cls_token, sep_token, pad_token, unk_token, mask_token: special tokens (must be in the vocab).
      suffix_indicator: prefix of word-continuation pieces.
    """

    def __init__(self, vocabulary, lowercase=True, sequence_length=128, max_chars_per_word=100,
                 pair_truncation="bert", tflite_compatible=False, cls_token="[CLS]",
                 sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]",
                 suffix_indicator="##", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # Inputs are tf.string tensors: keep them as they are (no backend conversion).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if isinstance(vocabulary, str):
            vocabulary = read_vocabulary(vocabulary)
        vocabulary = list(vocabulary)
        self.special_tokens = SpecialTokens(cls_token, sep_token, pad_token, unk_token, mask_token)
        check_vocabulary(vocabulary, special_tokens=self.special_tokens)
        if int(sequence_length) < 3:
            raise ValueError(f"sequence_length must be at least 3 ([CLS] x [SEP]), got {sequence_length}")
        if int(max_chars_per_word) < 1:
            raise ValueError(f"max_chars_per_word must be positive, got {max_chars_per_word}")
        if pair_truncation not in PAIR_TRUNCATION_RULES:
            raise ValueError(f"pair_truncation must be one of {PAIR_TRUNCATION_RULES}, "
                             f"got {pair_truncation!r}")
        self.vocabulary = vocabulary
        self.lowercase = bool(lowercase)
        self.sequence_length = int(sequence_length)
        self.max_chars_per_word = int(max_chars_per_word)
        self.pair_truncation = pair_truncation
        self.tflite_compatible = bool(tflite_compatible)
        self.suffix_indicator = suffix_indicator
        self._token_to_id = {token: i for i, token in enumerate(vocabulary)}
        self.cls_id, self.sep_id, self.pad_id, self.unk_id, self.mask_id = (
            self._token_to_id[t] for t in (cls_token, sep_token, pad_token, unk_token, mask_token))
        # Words reach the op already split and normalized; the per-word length limit is applied
        # in characters before it (BERT counts characters, the op counts bytes: 4 per character).
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocabulary, suffix_indicator=suffix_indicator,
            max_bytes_per_word=4 * self.max_chars_per_word, token_out_type=tf.int32,
            unknown_token=unk_token, no_pretokenization=True, support_detokenization=True)
        # tensorflow-text's FastBertTokenizer: normalization, splitting and WordPiece in two ops.
        # It limits bytes per word, which equals BERT's character limit for ASCII words only;
        # longer non-ASCII words (> max_chars_per_word bytes) become [UNK] here. `call` uses it
        # for every printable-ASCII row (exact there; see `_piece_rows`), and with
        # tflite_compatible=True for every row.
        self._fast_bert = tf_text.FastBertTokenizer(
            vocab=vocabulary, suffix_indicator=suffix_indicator,
            max_bytes_per_word=self.max_chars_per_word, token_out_type=tf.int32,
            unknown_token=unk_token, lower_case_nfd_strip_accents=self.lowercase)
        self._vocabulary_tensor = None
        self.built = True

    @classmethod
    def from_vocab_file(cls, path, lowercase=True, sequence_length=128, **kwargs):
        """Builds the layer from a BERT vocab.txt; the vocabulary is stored in the layer's config."""
        return cls(read_vocabulary(path), lowercase=lowercase, sequence_length=sequence_length,
                   **kwargs)

    # ------------------------------------------------------------------ vocabulary
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def get_vocabulary(self) -> list:
        return list(self.vocabulary)

    def id_to_token(self, token_id: int) -> str:
        if not 0 <= int(token_id) < len(self.vocabulary):
            raise ValueError(f"token id {token_id} is outside the vocabulary [0, {len(self.vocabulary)})")
        return self.vocabulary[int(token_id)]

    def token_to_id(self, token: str) -> int:
        if token not in self._token_to_id:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self._token_to_id[token]

    def ids_to_tokens(self, ids):
        """In-graph lookup: int tensor (dense or ragged) -> string tensor of the same shape."""
        if self._vocabulary_tensor is None:
            self._vocabulary_tensor = tf.constant(self.vocabulary)
        ids = tf.clip_by_value(ids, 0, len(self.vocabulary) - 1)
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(tf.gather(self._vocabulary_tensor, ids.flat_values))
        return tf.gather(self._vocabulary_tensor, ids)

    # ------------------------------------------------------------------ ragged tokenization
    def _normalized_words(self, text):
        """text [batch] -> (valid text, raw words, normalized words, starts, ends), [batch, (words)].
        Words that normalize to nothing (only control characters or accents) are removed."""
        text = normalization.to_valid_utf8(text)
        raw, starts, ends = normalization.split_words_with_offsets(text, self.lowercase)
        normalized = raw.with_flat_values(
            normalization.normalize_words(raw.flat_values, self.lowercase))
        keep = tf.strings.length(normalized) > 0
        raw, normalized, starts, ends = (tf.ragged.boolean_mask(t, keep)
                                         for t in (raw, normalized, starts, ends))
        return text, raw, normalized, starts, ends

    def _wordpiece_input(self, normalized):
        """Flat normalized words [n_words] with over-long words replaced by the [UNK] token."""
        words = normalized.flat_values
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self.max_chars_per_word
        return tf.where(too_long, tf.constant(self.special_tokens.unk), words), too_long

    def tokenize(self, text):
        """Strings [batch] -> int32 RaggedTensor [batch, (words), (pieces)]."""
        text = self._as_batch(text)[0]
        _, _, normalized, _, _ = self._normalized_words(text)
        words, _ = self._wordpiece_input(normalized)
        pieces = self._wordpiece.tokenize(words)  # [n_words, (pieces)]
        return tf.RaggedTensor.from_row_splits(pieces, normalized.row_splits, validate=False)

    def tokenize_with_offsets(self, text):
        """Strings [batch] -> dict of RaggedTensors (ids, piece and word byte offsets); see module."""
        text = self._as_batch(text)[0]
        text, raw, normalized, starts, ends = self._normalized_words(text)
        words, too_long = self._wordpiece_input(normalized)
        ids, piece_starts, piece_ends = self._wordpiece.tokenize_with_offsets(words)
        # ids/piece_*: [n_words, (pieces)], offsets into the *normalized* word. Map them back to the
        # raw word by normalizing each raw character on its own and accumulating byte lengths.
        # Characters are split from all raw words joined into one string (a flat split: a ragged
        # [words, chars] split would materialize [n_words, longest word] index tensors).
        raw_words = raw.flat_values  # [n_words]
        raw_lengths = tf.cast(tf.strings.length(raw_words), tf.int64)
        word_concat_end = tf.cumsum(raw_lengths)  # [n_words] byte where each word ends when joined
        word_concat_start = word_concat_end - raw_lengths
        chars, char_starts = tf.strings.unicode_split_with_offsets(
            tf.strings.reduce_join(raw_words), "UTF-8")  # [n_chars], bytes into the joined string
        char_ends = char_starts + tf.cast(tf.strings.length(chars), tf.int64)
        char_lengths = tf.strings.length(
            normalization.normalize_words(chars, self.lowercase))  # [n_chars]
        cumulative = tf.cumsum(tf.cast(char_lengths, tf.int64))  # normalized bytes up to each char
        first_char = tf.searchsorted(char_starts, word_concat_start, side="left", out_type=tf.int64)
        last_char = tf.maximum(
            tf.searchsorted(char_starts, word_concat_end, side="left", out_type=tf.int64) - 1,
            first_char)
        word_base = tf.gather(tf.concat([[0], cumulative], 0), first_char)  # [n_words]
        piece_word = ids.value_rowids()  # [n_pieces] flat word index of every piece

        def to_raw(normalized_offset, char_bounds):
            key = tf.gather(word_base, piece_word) + normalized_offset
            char = tf.searchsorted(cumulative, key, side="right", out_type=tf.int64)
            char = tf.clip_by_value(char, tf.gather(first_char, piece_word),
                                    tf.gather(last_char, piece_word))
            sentinel = tf.concat([char_bounds, [0]], 0)  # valid index even with no characters
            return tf.gather(sentinel, char) - tf.gather(word_concat_start, piece_word)

        word_start_flat = tf.gather(starts.flat_values, piece_word)
        word_end_flat = tf.gather(ends.flat_values, piece_word)
        start_flat = word_start_flat + to_raw(piece_starts.flat_values, char_starts)
        end_flat = word_start_flat + to_raw(piece_ends.flat_values - 1, char_ends)
        # An over-long word is one [UNK] piece spanning the whole word.
        long_piece = tf.gather(too_long, piece_word)
        start_flat = tf.where(long_piece, word_start_flat, start_flat)
        end_flat = tf.where(long_piece, word_end_flat, end_flat)

        def nest(flat):
            return tf.RaggedTensor.from_row_splits(
                ids.with_flat_values(flat), normalized.row_splits, validate=False)

        return {
            "token_ids": nest(ids.flat_values),
            "start_offsets": nest(start_flat),
            "end_offsets": nest(end_flat),
            "word_start_offsets": starts,
            "word_end_offsets": ends,
        }

    def detokenize(self, ids):
        """Ids [batch, seq] (dense or ragged) -> strings [batch]: the normalized text, words joined
        by single spaces, with [CLS]/[SEP]/[PAD] removed."""
        ids = tf.cast(ids, tf.int32)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        keep = ((ids != self.cls_id) & (ids != self.sep_id) & (ids != self.pad_id))
        return self._wordpiece.detokenize(tf.ragged.boolean_mask(ids, keep))

    # ------------------------------------------------------------------ packing
    def call(self, inputs, return_offsets=False):
        segments, scalar = self._as_segments(inputs)
        flat_ids, row_splits, offsets = [], [], []
        for text in segments:
            if self.tflite_compatible and not return_offsets:
                pieces = self._fast_bert.tokenize(text)  # [batch, (pieces)]
                flat_ids.append(pieces.flat_values)
                row_splits.append(pieces.row_splits)
            elif not return_offsets:
                pieces = self._piece_rows(text)  # [batch, (pieces)]
                flat_ids.append(pieces.flat_values)
                row_splits.append(pieces.row_splits)
            else:
                tokens = self.tokenize_with_offsets(text)
                ids = tokens["token_ids"]
                word_row = ids.values.value_rowids()  # flat word index of every piece
                first_word = tf.gather(ids.row_splits, ids.value_rowids())  # [n_words]
                word_ids = tf.gather(tf.range(tf.shape(first_word, out_type=tf.int64)[0])
                                     - first_word, word_row)
                flat_ids.append(ids.flat_values)
                row_splits.append(ids.merge_dims(1, 2).row_splits)
                offsets.append((tokens["start_offsets"].flat_values,
                                tokens["end_offsets"].flat_values, word_ids))
        outputs, layout = pack(flat_ids, row_splits, self.sequence_length, self.cls_id,
                               self.sep_id, self.pad_id, self.pair_truncation)
        if return_offsets:
            for i, name in enumerate(("start_offsets", "end_offsets", "word_ids")):
                outputs[name] = layout.gather([o[i] for o in offsets], -1, -1, -1)
        if scalar:
            outputs = {k: v[0] for k, v in outputs.items()}
        return outputs

    def _piece_rows(self, text):
        """text [batch] -> int32 RaggedTensor [batch, (pieces)], the exact ids of `tokenize`.

        Rows of printable ASCII (plus tab, newline, carriage return) go through FastBertTokenizer
        (the fast path): on them BERT's normalization is only lowercasing (NFD and accent stripping
        change nothing, there are no control characters to drop), its whitespace and punctuation
        sets equal BERT's, and bytes per word equal characters. Every other row takes the exact
        path. The two groups are tokenized separately and put back in input order."""
        is_ascii = tf.strings.regex_full_match(text, ASCII_ROW_PATTERN)             # [batch]
        ascii_rows = tf.where(is_ascii)[:, 0]                                        # [n_a]
        other_rows = tf.where(tf.logical_not(is_ascii))[:, 0]                        # [n_o]
        fast = self._fast_bert.tokenize(tf.gather(text, ascii_rows))         # [n_a, (pieces)]
        exact = self.tokenize(tf.gather(text, other_rows)).merge_dims(1, 2)  # [n_o, (pieces)]
        pieces = tf.concat([fast, exact], axis=0)                         # grouped order
        order = tf.argsort(tf.concat([ascii_rows, other_rows], axis=0))   # input row -> position
        return tf.gather(pieces, order)

    def _as_batch(self, text):
        """Any string input -> ([batch] string tensor, was it a scalar)."""
        if isinstance(text, tf.RaggedTensor):
            raise ValueError("BertTokenizer takes dense string tensors, not a RaggedTensor")
        text = tf.convert_to_tensor(text)
        if text.dtype != tf.string:
            raise ValueError(f"BertTokenizer takes strings, got a {text.dtype.name} tensor")
        rank = text.shape.rank
        if rank == 0:
            return text[tf.newaxis], True
        if rank == 1:
            return text, False
        if rank == 2 and text.shape[-1] == 1:
            return tf.reshape(text, [-1]), False
        if rank is None:
            return tf.reshape(text, [-1]), False
        raise ValueError(f"BertTokenizer takes strings of shape [batch] (or [batch, 1] or a "
                         f"scalar), got shape {text.shape}")

    def _as_segments(self, inputs):
        """A string batch -> one segment; a tuple (or 2-list of batches) -> two segments."""
        if isinstance(inputs, dict):
            raise ValueError("BertTokenizer takes a string tensor or a tuple (first, second) of "
                             "them, not a dict")
        is_pair = isinstance(inputs, tuple) or (
            isinstance(inputs, list) and len(inputs) == 2
            and all(tf.is_tensor(x) or isinstance(x, (list, np.ndarray)) for x in inputs))
        if not is_pair:
            text, scalar = self._as_batch(inputs)
            return [text], scalar
        if len(inputs) not in (1, 2):
            raise ValueError(f"BertTokenizer packs one or two segments, got {len(inputs)}")
        batches = [self._as_batch(x) for x in inputs]
        if len({scalar for _, scalar in batches}) != 1:
            raise ValueError("both segments must be scalars or both batches")
        sizes = {t.shape[0] for t, _ in batches if t.shape[0] is not None}
        if len(sizes) > 1:
            raise ValueError(f"the two segments have different batch sizes: {sorted(sizes)}")
        return [t for t, _ in batches], batches[0][1]

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary": list(self.vocabulary),
            "lowercase": self.lowercase,
            "sequence_length": self.sequence_length,
            "max_chars_per_word": self.max_chars_per_word,
            "pair_truncation": self.pair_truncation,
            "tflite_compatible": self.tflite_compatible,
            "cls_token": self.special_tokens.cls,
            "sep_token": self.special_tokens.sep,
            "pad_token": self.special_tokens.pad,
            "unk_token": self.special_tokens.unk,
            "mask_token": self.special_tokens.mask,
            "suffix_indicator": self.suffix_indicator,
        })
        return config
