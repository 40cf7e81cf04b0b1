"""NER inference as TensorFlow graph ops: raw text -> model windows -> word tags and entity spans.

This is the ONE way NER text is cut and decoded. Training features (`NerTask.encode`), evaluation,
`bert-tf predict` and the exported SavedModel all run `ner_windows` and `decode_entities`, so what
is scored is what is served. Only tensorflow + tensorflow_text ops (ragged ones included): the
functions trace inside a `tf.function` with a [None] string signature and load in a SavedModel.

Rules:

* Words are the runs of characters between ASCII whitespace
  (`WORD_SEPARATORS` = " \\t\\n\\r\\v\\f"); `split_words` is the same rule in Python. A
  CoNLL sentence's tokens joined with " " therefore split back into exactly those tokens (a token
  may not contain ASCII whitespace; other whitespace, like U+00A0, stays inside a word).
* Each word is WordPiece-tokenized on its own (like `base.word_pieces`: BERT's pre-tokenizer may
  split it further, e.g. "@user" -> "@", "user"; all those pieces belong to the word). A word is
  labelled at its first piece; a word with no pieces (only control characters or accents) is "O".
* A text's pieces are cut into windows [CLS] pieces [SEP] [PAD]... of S = tokenizer.sequence_length
  positions, so at most S - 2 pieces each, starting `stride` pieces apart (run_squad's doc-stride
  loop, `start += min(length, stride)`, until a window reaches the last piece; windows may start
  mid-word). A text with no pieces (empty, all whitespace) still gets one window [CLS] [SEP], so
  there are W >= B windows. `stride` is 1..S-2; the default is (S - 2) // 2.
* A piece inside several windows is decoded in the one where it has the most context: score
  min(pieces to its left, pieces to its right) + 0.01 * window length, ties to the earlier window
  (run_squad's `_is_max_context`). It is computed exactly in integers as 100 * min + length.
  A word's tag is the argmax at its first piece in that window.
* Entities follow IOB2 over the words: an entity starts at B-X, or at I-X when the previous word is
  not of type X, and continues over I-X words; a label that is not B-/I-TYPE counts as outside.
  Its span runs from its first word's start to its last word's end (whatever lies between the
  words, e.g. two spaces, is part of the entity text).

Offsets: `ner_windows` gives each word's UTF-8 byte span; `decode_entities` returns CHARACTER
(code point) offsets, so Python's text[start:end] is the entity text. Invalid UTF-8 is replaced by
U+FFFD first (as the tokenizer does); offsets refer to that text, which is the input itself for
valid UTF-8.
"""

from __future__ import annotations

import re

import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf.tasks.base import INPUT_NAMES
from bert_tf.text import normalization

#: characters that separate words, in the graph and in Python
WORD_SEPARATORS = " \t\n\r\v\f"
_SEPARATOR_PATTERN = r"[ \t\n\r\v\f]+"  # RE2 (graph) and Python re read it the same way
#: names `ner_windows` returns that are model inputs (int32 [W, S]); the rest is decoding state
MODEL_INPUT_NAMES = INPUT_NAMES


def split_words(text: str) -> list:
    """The words of `text` by the graph's rule (runs of non-`WORD_SEPARATORS` characters)."""
    return [word for word in re.split(_SEPARATOR_PATTERN, text) if word]


def default_stride(sequence_length: int) -> int:
    """Half a window of pieces: (S - 2) // 2, at least 1."""
    return max(1, (int(sequence_length) - 2) // 2)


def check_stride(stride, sequence_length: int) -> int:
    """`stride` as an int in 1..sequence_length - 2 (None -> `default_stride`), else ValueError."""
    room = int(sequence_length) - 2
    if stride is None:
        return default_stride(sequence_length)
    if isinstance(stride, bool) or not isinstance(stride, int):
        raise ValueError(f"NER stride must be an integer number of word-pieces, got {stride!r}")
    if not 1 <= stride <= room:
        raise ValueError(f"NER stride must be between 1 and sequence_length - 2 = {room} "
                         f"word-pieces (windows hold {room} pieces), got {stride}")
    return stride


def _as_text_batch(text):
    text = tf.convert_to_tensor(text, tf.string)
    if text.shape.rank != 1:
        raise ValueError(f"NER text must be a [batch] string tensor, got shape {text.shape}")
    return text


def ner_windows(tokenizer, text, stride: int) -> dict:
    """Texts [B] -> the model windows and what decoding needs (see the module rules).

    Returns a dict of tensors:
      input_ids, token_type_ids, attention_mask  int32 [W, S]
      row_index     int32 [W]     the text each window comes from (rows in order, W >= B)
      first_word    int32 [W, S]  word index (within its text) of the word whose FIRST piece sits at
                                  this position, else -1
      max_context   bool  [W, S]  first_word >= 0 and this window is that piece's max-context one
      word_starts, word_ends  int64 [B, max_words]  UTF-8 byte span of each word (-1 padding)
      word_count    int32 [B]
    """
    seq = int(tokenizer.sequence_length)
    room = seq - 2
    stride = check_stride(stride, seq)
    # Also NUL -> \x01 (same bytes): the regex splitter would stop at a NUL.
    text = normalization.to_valid_utf8(_as_text_batch(text))
    words, word_starts, word_ends = tf_text.regex_split_with_offsets(
        text, _SEPARATOR_PATTERN)                                                # [B, (words)]
    # Each word on its own: [n_words, (parts), (pieces)] -> [n_words, (pieces)].
    pieces = tokenizer.tokenize(words.flat_values).merge_dims(1, 2)
    piece_ids = tf.cast(pieces.flat_values, tf.int32)                           # [P]
    word_of_piece = tf.cast(pieces.value_rowids(), tf.int32)                    # [P] global word
    is_first = tf.range(tf.size(piece_ids)) == tf.gather(
        tf.cast(pieces.row_splits, tf.int32), word_of_piece)                    # [P]
    word_splits = tf.cast(words.row_splits, tf.int32)                           # [B + 1]
    row_of_word = tf.cast(words.value_rowids(), tf.int32)                       # [n_words]
    word_in_row = word_of_piece - tf.gather(word_splits, tf.gather(row_of_word, word_of_piece))
    piece_splits = tf.gather(tf.cast(pieces.row_splits, tf.int32), word_splits)  # [B + 1]
    n_pieces = piece_splits[1:] - piece_splits[:-1]                             # [B]

    # Windows: k = 1 + ceil((n - room) / stride) per text (1 when it fits). As stride <= room,
    # every window but the last is full: run_squad's `start += min(length, stride)` is j * stride.
    n_windows = 1 + tf.maximum(0, (n_pieces - room + stride - 1) // stride)     # [B]
    row_index = tf.repeat(tf.range(tf.size(n_pieces)), n_windows)               # [W]
    window_splits = tf.concat([[0], tf.cumsum(n_windows)], 0)
    window_in_row = tf.range(tf.size(row_index)) - tf.gather(window_splits, row_index)  # [W]
    start = window_in_row * stride                                              # [W]
    length = tf.minimum(tf.gather(n_pieces, row_index) - start, room)           # [W]
    position = tf.range(seq)[tf.newaxis, :]                                     # [1, S]
    offset = position - 1                                                       # piece # in window
    in_piece = (offset >= 0) & (offset < length[:, tf.newaxis])                 # [W, S]
    n_total = tf.size(piece_ids)
    window_base = tf.gather(piece_splits, row_index) + start                   # [W] flat index
    piece = tf.where(in_piece, window_base[:, tf.newaxis] + offset, n_total)    # [W, S], P = none

    def at_pieces(values, fill):
        return tf.gather(tf.concat([values, [fill]], 0), piece)

    special = tf.where(position == 0, tokenizer.cls_id,
                       tf.where(position == length[:, tf.newaxis] + 1, tokenizer.sep_id,
                                tokenizer.pad_id))
    input_ids = tf.where(in_piece, at_pieces(piece_ids, 0), special)
    attention_mask = tf.cast(position <= length[:, tf.newaxis] + 1, tf.int32)
    first_word = tf.where(in_piece & at_pieces(is_first, False), at_pieces(word_in_row, -1), -1)

    # Max-context window of every piece: integer score 100 * min(left, right) + length, made unique
    # per window by appending the reversed window index as low digits (earlier window wins a tie).
    left = tf.cast(offset, tf.int64)
    right = tf.cast(length[:, tf.newaxis] - 1, tf.int64) - left
    score = 100 * tf.minimum(left, right) + tf.cast(length[:, tf.newaxis], tf.int64)  # [W, S]
    most_windows = tf.cast(tf.reduce_max(tf.concat([n_windows, [1]], 0)), tf.int64)
    earlier = most_windows - 1 - tf.cast(window_in_row, tf.int64)              # [W]
    key = score * most_windows + earlier[:, tf.newaxis]
    key = tf.where(in_piece, key, -1)
    best = tf.math.unsorted_segment_max(tf.reshape(key, [-1]), tf.reshape(piece, [-1]), n_total + 1)
    max_context = (first_word >= 0) & (key == tf.gather(best, piece))

    return {"input_ids": input_ids, "token_type_ids": tf.zeros_like(input_ids),
            "attention_mask": attention_mask, "row_index": row_index, "first_word": first_word,
            "max_context": max_context, "word_starts": word_starts.to_tensor(-1),
            "word_ends": word_ends.to_tensor(-1),
            "word_count": tf.cast(words.row_lengths(), tf.int32)}


def iob2_tables(labels):
    """Per label id: entity type index (0 = outside) and whether it is a B- tag; the type names
    ("" first, for outside)."""
    types, type_of, is_begin = [""], [], []
    for name in labels:
        prefix, _, kind = name.partition("-")
        if prefix in ("B", "I") and kind:
            if kind not in types:
                types.append(kind)
            type_of.append(types.index(kind))
            is_begin.append(prefix == "B")
        else:  # "O" and anything that is not IOB2 counts as outside
            type_of.append(0)
            is_begin.append(False)
    return types, type_of, is_begin


def decode_entities(logits, windows: dict, text, labels) -> dict:
    """Window logits [W, S, L] -> per text word tags and IOB2 entities (see the module rules).

    `windows`: `ner_windows`' output for `text` [B] (the model inputs may be left out); `labels`:
    the L label names. Returns:
      word_tags      string [B, max_words]  each word's tag ("O" for a word without pieces,
                                            "" padding)
      word_count     int32  [B]
      entity_count   int32  [B]
      entity_labels  string [B, E]  entity type ("" padding); E = most entities in the batch
      entity_texts   string [B, E]  text[start:end]
      entity_starts, entity_ends  int64 [B, E]  character offsets into the text (-1 padding)
    """
    labels = [str(name) for name in labels]
    if not labels:
        raise ValueError("decode_entities needs the label names, got none")
    text = tf.strings.unicode_transcode(_as_text_batch(text), input_encoding="UTF-8",
                                        output_encoding="UTF-8", errors="replace",
                                        replacement_char=0xFFFD)  # same bytes as ner_windows saw
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank is not None and logits.shape.rank != 3:
        raise ValueError(f"NER logits must be [windows, sequence, labels], got shape "
                         f"{logits.shape}")
    if logits.shape[-1] is not None and logits.shape[-1] != len(labels):
        raise ValueError(f"NER logits have {logits.shape[-1]} labels but {len(labels)} label names "
                         f"were given: {labels}")
    tf.debugging.assert_equal(tf.shape(logits)[:2], tf.shape(windows["first_word"]),
                              message="NER logits must have one row per window position "
                                      "([W, S] of ner_windows)")
    tf.debugging.assert_equal(tf.shape(logits)[2], len(labels),
                              message=f"NER logits must have {len(labels)} labels ({labels})")
    word_count = tf.cast(windows["word_count"], tf.int32)                      # [B]
    word_starts = tf.cast(windows["word_starts"], tf.int64)                    # [B, Wd]
    word_ends = tf.cast(windows["word_ends"], tf.int64)
    batch = tf.shape(word_starts)[0]
    most_words = tf.shape(word_starts)[1]
    tag_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)                 # [W, S]

    # Each word's tag: its first piece in its max-context window (exactly one per word with pieces).
    chosen = tf.where(windows["max_context"])                                  # [n, 2]
    rows = tf.gather(tf.cast(windows["row_index"], tf.int32), chosen[:, 0])
    word = tf.gather_nd(tf.cast(windows["first_word"], tf.int32), chosen)
    word_tag = tf.scatter_nd(tf.stack([rows, word], 1), tf.gather_nd(tag_ids, chosen) + 1,
                             tf.stack([batch, most_words])) - 1                # [B, Wd], -1 = none
    has_tag = word_tag >= 0
    in_text = tf.range(most_words)[tf.newaxis, :] < word_count[:, tf.newaxis]  # [B, Wd]
    safe_tag = tf.maximum(word_tag, 0)
    word_tags = tf.where(has_tag, tf.gather(tf.constant(labels), safe_tag), "O")
    word_tags = tf.where(in_text, word_tags, "")

    types, type_of, is_begin = iob2_tables(labels)
    word_type = tf.where(has_tag, tf.gather(tf.constant(type_of, tf.int32), safe_tag), 0)  # [B, Wd]
    word_begin = has_tag & tf.gather(tf.constant(is_begin), safe_tag)
    previous_type = tf.pad(word_type[:, :-1], [[0, 0], [1, 0]])
    starts = (word_type > 0) & (word_begin | (previous_type != word_type))    # [B, Wd]
    entity_index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1            # [B, Wd]
    in_entity = (word_type > 0) & (entity_index >= 0)
    count = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1)                   # [B]
    most = tf.reduce_max(tf.concat([count, [0]], 0))                           # E
    # Segment per (text, entity) = row * Wd + entity index; words outside entities go to a dump.
    n_segments = batch * most_words
    segment = tf.where(in_entity, tf.range(batch)[:, tf.newaxis] * most_words + entity_index,
                       n_segments)
    valid = tf.range(most)[tf.newaxis, :] < count[:, tf.newaxis]                # [B, E]

    def per_entity(values, reducer, default):
        flat = reducer(values, segment, n_segments + 1)[:-1]
        return tf.where(valid, tf.reshape(flat, [batch, most_words])[:, :most], default)

    byte_starts = per_entity(word_starts, tf.math.unsorted_segment_min, tf.constant(0, tf.int64))
    byte_ends = per_entity(word_ends, tf.math.unsorted_segment_max, tf.constant(0, tf.int64))
    entity_type = per_entity(word_type, tf.math.unsorted_segment_max, 0)
    texts = tf.broadcast_to(text[:, tf.newaxis], tf.shape(byte_starts))        # [B, E]

    def characters(byte_offset):
        before = tf.strings.substr(texts, tf.zeros_like(byte_offset), byte_offset)
        chars = tf.strings.length(before, unit="UTF8_CHAR")
        return tf.where(valid, tf.cast(chars, tf.int64), -1)

    return {"word_tags": word_tags, "word_count": word_count, "entity_count": count,
            "entity_labels": tf.where(valid, tf.gather(tf.constant(types), entity_type), ""),
            "entity_texts": tf.strings.substr(texts, byte_starts, byte_ends - byte_starts),
            "entity_starts": characters(byte_starts), "entity_ends": characters(byte_ends)}
