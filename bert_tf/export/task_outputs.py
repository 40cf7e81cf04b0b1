"""Turning raw logits into what a client wants, as dense TensorFlow graph ops (no ragged tensors,
no Python): probabilities and labels, entity spans, answer text. Used inside the SavedModel's
`serving_default` so that clients send text and get answers.
"""

from __future__ import annotations

import tensorflow as tf


def classification_outputs(logits, labels):
    """logits [b, c] -> probabilities [b, c] float32, label_ids [b] int32, labels [b] string."""
    probabilities = tf.nn.softmax(logits, axis=-1)
    label_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {"logits": logits, "probabilities": probabilities, "label_ids": label_ids,
            "labels": tf.gather(tf.constant(list(labels)), label_ids)}


def regression_outputs(logits):
    """logits [b, 1] -> score [b]."""
    return {"logits": logits, "score": logits[:, 0]}


def _iob2_tables(labels):
    """Per label id: entity type index (0 = outside) and whether it is a B- tag; type names."""
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


def entity_outputs(logits, features, text, labels):
    """Token logits -> IOB2 entity spans, padded to the most entities in the batch (E).

    logits [b, s, l]; features: the tokenizer's output with offsets (`word_ids`, `start_offsets`,
    `end_offsets`, -1 outside the text); text [b] the input strings. A word's tag is its first
    piece's (as in BERT's NER recipe). Outputs: entity_count [b] int32, entity_labels [b, E]
    string ("" padding), entity_texts [b, E] string, entity_starts / entity_ends [b, E] int64 UTF-8
    byte offsets into the input (-1 padding), and tags [b, s] string per word-piece.
    """
    types, type_of, is_begin = _iob2_tables(labels)
    tag_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)            # [b, s]
    batch = tf.shape(tag_ids)[0]
    seq = tf.shape(tag_ids)[1]
    word_ids = tf.cast(features["word_ids"], tf.int32)                      # [b, s], -1 = none
    previous = tf.pad(word_ids[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    first_piece = (word_ids >= 0) & (word_ids != previous)                   # [b, s]
    # Word-level tables [b, s] (a batch row has at most s words): segment = row * s + word id.
    n_segments = batch * seq
    row = tf.range(batch)[:, tf.newaxis]
    dump = n_segments  # pieces that are not the first of a word go to an extra segment
    segment = tf.where(first_piece, row * seq + word_ids, dump)
    word_tag = tf.math.unsorted_segment_max(tag_ids, segment, n_segments + 1)[:-1]
    in_text = tf.where(word_ids >= 0, row * seq + word_ids, dump)
    word_start = tf.math.unsorted_segment_min(features["start_offsets"], in_text, n_segments + 1)[:-1]
    word_end = tf.math.unsorted_segment_max(features["end_offsets"], in_text, n_segments + 1)[:-1]
    has_word = tf.math.unsorted_segment_max(tf.ones_like(tag_ids), segment, n_segments + 1)[:-1] > 0
    word_tag = tf.where(has_word, word_tag, 0)
    word_type = tf.reshape(tf.gather(tf.constant(type_of, tf.int32), word_tag), [batch, seq])
    word_begin = tf.reshape(tf.gather(tf.constant(is_begin), word_tag), [batch, seq])
    word_start = tf.reshape(word_start, [batch, seq])
    word_end = tf.reshape(word_end, [batch, seq])
    word_type = tf.where(tf.reshape(has_word, [batch, seq]), word_type, 0)
    # An entity starts at a B- tag, or at an I- tag whose previous word has another type.
    previous_type = tf.pad(word_type[:, :-1], [[0, 0], [1, 0]])
    starts = (word_type > 0) & (word_begin | (previous_type != word_type))   # [b, w]
    entity_index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1          # [b, w]
    in_entity = (word_type > 0) & (entity_index >= 0)
    entity_segment = tf.where(in_entity, row * seq + entity_index, dump)
    count = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1)                # [b]
    most = tf.reduce_max(tf.concat([count, [0]], 0))

    def per_entity(values, reducer, default):
        flat = reducer(values, entity_segment, n_segments + 1)[:-1]
        table = tf.reshape(flat, [batch, seq])[:, :most]
        valid = tf.range(most)[tf.newaxis, :] < count[:, tf.newaxis]
        return tf.where(valid, table, default)

    entity_starts = per_entity(word_start, tf.math.unsorted_segment_min, tf.constant(-1, tf.int64))
    entity_ends = per_entity(word_end, tf.math.unsorted_segment_max, tf.constant(-1, tf.int64))
    entity_type = per_entity(word_type, tf.math.unsorted_segment_max, 0)
    entity_labels = tf.gather(tf.constant(types), entity_type)
    texts = tf.broadcast_to(text[:, tf.newaxis], tf.shape(entity_starts))
    entity_texts = tf.strings.substr(texts, tf.maximum(entity_starts, 0),
                                     tf.maximum(entity_ends - entity_starts, 0))
    return {"logits": logits, "tags": tf.gather(tf.constant(list(labels)), tag_ids),
            "entity_count": count, "entity_labels": entity_labels, "entity_texts": entity_texts,
            "entity_starts": entity_starts, "entity_ends": entity_ends}


def answer_outputs(start_logits, end_logits, features, context, max_answer_length):
    """Best answer span in the context: argmax of start + end logits over spans with start <= end,
    at most `max_answer_length` pieces, both ends in the context segment (as in BERT's run_squad).

    start_logits/end_logits [b, s]; features with `token_type_ids`, `start_offsets`, `end_offsets`.
    Outputs: answer [b] string, score [b] float32 (start + end logit), answer_start / answer_end
    [b] int64 UTF-8 byte offsets into `context`, start_index / end_index [b] int32 piece positions.
    """
    in_context = (features["token_type_ids"] > 0) & (features["start_offsets"] >= 0)   # [b, s]
    seq = tf.shape(start_logits)[1]
    scores = start_logits[:, :, tf.newaxis] + end_logits[:, tf.newaxis, :]           # [b, s, s]
    positions = tf.range(seq)
    span = positions[tf.newaxis, :] - positions[:, tf.newaxis]                        # end - start
    allowed = (span >= 0) & (span < max_answer_length)                                # [s, s]
    allowed = (allowed[tf.newaxis] & in_context[:, :, tf.newaxis]
               & in_context[:, tf.newaxis, :])                                        # [b, s, s]
    masked = tf.where(allowed, scores, tf.float32.min)
    best = tf.argmax(tf.reshape(masked, [tf.shape(scores)[0], -1]), axis=-1, output_type=tf.int32)
    start_index, end_index = best // seq, best % seq
    has_answer = tf.reduce_any(in_context, axis=1)
    score = tf.where(has_answer, tf.reduce_max(tf.reshape(masked, [tf.shape(scores)[0], -1]), -1),
                     tf.float32.min)
    answer_start = tf.gather(features["start_offsets"], start_index, batch_dims=1)
    answer_end = tf.gather(features["end_offsets"], end_index, batch_dims=1)
    answer_start = tf.where(has_answer, answer_start, -1)
    answer_end = tf.where(has_answer, answer_end, -1)
    answer = tf.strings.substr(context, tf.maximum(answer_start, 0),
                               tf.maximum(answer_end - answer_start, 0))
    return {"start_logits": start_logits, "end_logits": end_logits, "answer": answer,
            "score": score, "answer_start": answer_start, "answer_end": answer_end,
            "start_index": start_index, "end_index": end_index}
