"""Packing word-pieces into BERT inputs: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, fixed length.

Only dense ops (range, gather, where, min/max) are used, on the flat piece ids and row splits of
each segment, so the same code runs in TensorFlow, in a SavedModel and in a TFLite model with
builtin ops only (no ragged ops end up in the graph).

Truncation keeps the first pieces of each segment. For pairs the budget is `sequence_length - 3`
pieces, shared "longest first" like google-research/bert's `truncate_seq_pair`: while too long,
drop a piece from the longer segment, from the second one on a tie. In closed form: a segment
that fits in half the budget is kept whole and the other gets the rest; if both are longer, the
first gets ceil(budget / 2) and the second floor(budget / 2). `pair_truncation="huggingface"`
gives the odd piece to the longer segment instead (what Hugging Face's `longest_first` does; the
two rules differ only for odd budgets when the first segment is not longer than the second).
"""

from __future__ import annotations

import tensorflow as tf

PAIR_TRUNCATION_RULES = ("bert", "huggingface")


def segment_lengths(row_splits: tf.Tensor) -> tf.Tensor:
    """[batch + 1] row splits -> [batch] int32 lengths."""
    row_splits = tf.cast(row_splits, tf.int32)
    return row_splits[1:] - row_splits[:-1]


def truncated_pair_lengths(length_a, length_b, budget: int, rule: str = "bert"):
    """How many pieces of each segment fit in `budget` ([batch] int32 each)."""
    if rule not in PAIR_TRUNCATION_RULES:
        raise ValueError(f"pair_truncation must be one of {PAIR_TRUNCATION_RULES}, got {rule!r}")
    # The "favoured" segment gets ceil(budget / 2) when both must be cut; the other floor.
    half_floor = budget // 2
    if rule == "bert":
        favour_a = tf.ones_like(length_a, dtype=tf.bool)
    else:
        favour_a = length_a > length_b
    favoured = tf.where(favour_a, length_a, length_b)
    other = tf.where(favour_a, length_b, length_a)
    other_kept = tf.minimum(other, tf.maximum(budget - favoured, half_floor))
    favoured_kept = tf.minimum(favoured, budget - other_kept)
    kept_a = tf.where(favour_a, favoured_kept, other_kept)
    kept_b = tf.where(favour_a, other_kept, favoured_kept)
    return kept_a, kept_b


class PackingLayout:
    """Where each output position of `[CLS] a [SEP] (b [SEP])` comes from, for a batch.

    Built from the row splits of one or two segments (flat piece tensors with [batch + 1] row
    splits). `gather(values_per_segment, ...)` then packs any per-piece feature (ids, offsets,
    word indices) into [batch, sequence_length] the same way.
    """

    def __init__(self, row_splits, sequence_length: int, pair_truncation: str = "bert"):
        if len(row_splits) not in (1, 2):
            raise ValueError(f"BERT packs one or two segments, got {len(row_splits)}")
        minimum = 2 * len(row_splits) + 1
        if sequence_length < minimum:
            raise ValueError(f"sequence_length={sequence_length} leaves no room for word-pieces "
                             f"({len(row_splits)} segment(s) need at least {minimum})")
        self.sequence_length = sequence_length
        self.starts = [tf.cast(splits[:-1], tf.int32) for splits in row_splits]
        lengths = [segment_lengths(splits) for splits in row_splits]
        if len(lengths) == 1:
            self.kept = [tf.minimum(lengths[0], sequence_length - 2)]
        else:
            self.kept = list(truncated_pair_lengths(lengths[0], lengths[1], sequence_length - 3,
                                                    pair_truncation))
        # positions: [1, S]; first_position[i]: [batch, 1], where segment i's pieces begin.
        self.positions = tf.range(sequence_length, dtype=tf.int32)[tf.newaxis, :]
        self.first_position = []
        self.in_segment = []  # [batch, S] bool, per segment
        self.separator = tf.zeros_like(self.positions, dtype=tf.bool)
        begin = tf.ones_like(self.kept[0])  # after [CLS]
        for kept in self.kept:
            first = begin[:, tf.newaxis]
            end = (begin + kept)[:, tf.newaxis]
            self.first_position.append(first)
            self.in_segment.append((self.positions >= first) & (self.positions < end))
            self.separator = self.separator | tf.equal(self.positions, end)
            begin = begin + kept + 1
        self.length = begin[:, tf.newaxis]  # [batch, 1] tokens incl. specials
        self.is_cls = tf.equal(self.positions, 0)

    def gather(self, values_per_segment, cls_value, sep_value, pad_value):
        """Packs per-piece values (one flat tensor per segment) into [batch, S]."""
        out = tf.fill(tf.shape(self.in_segment[0]), tf.cast(pad_value, values_per_segment[0].dtype))
        out = tf.where(self.is_cls, tf.cast(cls_value, out.dtype), out)
        out = tf.where(self.separator, tf.cast(sep_value, out.dtype), out)
        for values, start, first, inside in zip(values_per_segment, self.starts,
                                                self.first_position, self.in_segment):
            # One sentinel at the end so that every index is valid even for an empty batch.
            values = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)
            index = start[:, tf.newaxis] + tf.maximum(self.positions - first, 0)  # [batch, S]
            index = tf.minimum(index, tf.shape(values)[0] - 1)
            out = tf.where(inside, tf.gather(values, index), out)
        return out

    def token_type_ids(self):
        if len(self.in_segment) == 1:
            return tf.zeros_like(self.in_segment[0], dtype=tf.int32)
        # The second segment and its closing [SEP] are type 1: positions in [first, length).
        # Written as integer steps, not a cast of a bool mask: the TFLite converter rewrites the
        # embedding lookup's `type_id < 0` check on a cast bool into a bool zeros_like, which no
        # TFLite kernel takes (a pair classifier with the tokenizer inside failed to convert).
        after_first = tf.clip_by_value(self.positions - self.first_position[1] + 1, 0, 1)
        from_end = tf.clip_by_value(self.positions - self.length + 1, 0, 1)
        return after_first - from_end                                      # [batch, S] 0/1

    def attention_mask(self):
        return tf.cast(self.positions < self.length, tf.int32)


def pack(ids_per_segment, row_splits_per_segment, sequence_length, cls_id, sep_id, pad_id,
         pair_truncation="bert"):
    """Flat piece ids + row splits per segment -> dict of int32 [batch, sequence_length]."""
    layout = PackingLayout(row_splits_per_segment, sequence_length, pair_truncation)
    ids = [tf.cast(v, tf.int32) for v in ids_per_segment]
    return {
        "input_ids": layout.gather(ids, cls_id, sep_id, pad_id),
        "token_type_ids": layout.token_type_ids(),
        "attention_mask": layout.attention_mask(),
    }, layout
