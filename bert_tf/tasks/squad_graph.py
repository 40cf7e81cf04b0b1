"""SQuAD inference as TensorFlow graph ops: question + context strings -> windows -> answers.

This is the one inference path for extractive QA: `bert-tf predict`, `bert-tf evaluate` and the
exported SavedModel all run `qa_windows` before the model and `decode_answers` after it. Both
trace in a `tf.function` with [None] string inputs (unknown batch, unknown number of windows),
need only tensorflow + tensorflow_text ops, and have no Python loop over rows or windows.

`qa_windows` cuts exactly the windows of `bert_tf.data.squad_features.create_features` (which
training keeps for its targets): [CLS] query [SEP] context-window [SEP] [PAD]..., the query cut to
`max_query_length` pieces, `max_tokens_for_doc = sequence_length - len(query) - 3` context pieces
per window, window starts `doc_stride` apart (run_squad.py's loop), and a token is "max context" in
the window where min(left, right context) + 0.01 * window length is largest (earliest on ties).

`decode_answers` picks the answer `bert_tf.data.squad_postprocess.decode_spans` predicts: among
each window's `n_best_size` best start and end logits, the (start, end) pair with the highest
start + end logit whose start is a max-context context token, end a context token, end >= start
and at most `max_answer_length` tokens; ties go to the earliest window, then the better-ranked
start, then end (decode_spans' stable sort). SQuAD 2.0: the null score is the minimum over the
row's windows of start[CLS] + end[CLS]; the answer is "" when null - best > the threshold.
Logits are compared in float64, as decode_spans does, so float32 sums that round equal cannot
reorder candidates.
"""

from __future__ import annotations

import tensorflow as tf

# The model inputs in `qa_windows`' result (the rest of it is decoding state).
from bert_tf.models.encoder import INPUT_NAMES as MODEL_INPUTS  # noqa: F401


def _string_batch(value, name: str):
    value = tf.convert_to_tensor(value)
    if value.dtype != tf.string:
        raise ValueError(f"{name} must be a string tensor, got {value.dtype.name}")
    if value.shape.rank is not None and value.shape.rank != 1:
        raise ValueError(f"{name} must have shape [batch], got {value.shape}")
    return tf.reshape(value, [-1])


def qa_windows(tokenizer, question, context, doc_stride: int, max_query_length: int) -> dict:
    """question, context: string [B] -> the windows of every row, W >= B of them.

    Returns input_ids / token_type_ids / attention_mask int32 [W, S] (S = the tokenizer's
    sequence_length); example_index int32 [W] (the row of each window: a row's windows are
    consecutive, in context order); start_offsets / end_offsets int64 [W, S] UTF-8 byte span of
    each context token in its row's context, -1 off the context; token_is_max_context bool [W, S].
    A context without pieces gives one window [CLS] query [SEP] [SEP].
    """
    doc_stride, max_query_length = int(doc_stride), int(max_query_length)
    if doc_stride <= 0:
        raise ValueError(f"doc_stride must be positive, got {doc_stride}")
    if max_query_length < 0:
        raise ValueError(f"max_query_length must be >= 0, got {max_query_length}")
    question = _string_batch(question, "question")
    context = _string_batch(context, "context")
    seq = tokenizer.sequence_length
    rows = tf.shape(context)[0]
    same_rows = tf.debugging.assert_equal(
        tf.shape(question)[0], rows, message="question and context must have the same batch size")

    with tf.control_dependencies([same_rows]):
        query = tokenizer.tokenize(question).merge_dims(1, 2)[:, :max_query_length]  # [B, (q)]
    pieces = tokenizer.tokenize_with_offsets(context)
    context_ids = pieces["token_ids"].merge_dims(1, 2)                         # [B, (n)]
    query_length = tf.cast(query.row_lengths(), tf.int32)                      # [B]
    num_tokens = tf.cast(context_ids.row_lengths(), tf.int32)                  # [B]
    room = seq - query_length - 3                # max_tokens_for_doc: [CLS] query [SEP] .. [SEP]
    room_check = tf.debugging.assert_positive(
        room, message=f"sequence_length={seq} leaves no room for context after the question "
                      f"(cut to max_query_length={max_query_length} pieces); raise "
                      "sequence_length or lower max_query_length")
    with tf.control_dependencies([room_check]):
        room = tf.maximum(room, 1)               # (never used below 1: the check fails first)
    # run_squad.py: start += min(length, doc_stride), and every window but the last is full, so
    # starts are k * step; the last window is the first that reaches the end of the context.
    step = tf.minimum(room, doc_stride)                                        # [B]
    count = 1 + tf.maximum(num_tokens - room + step - 1, 0) // step            # windows per row [B]

    example_index = tf.repeat(tf.range(rows), count)                           # [W]
    num_windows = tf.shape(example_index)[0]
    window = tf.range(num_windows)                                             # [W]
    first_window = tf.cumsum(count, exclusive=True)                            # [B]
    doc_start = (window - tf.gather(first_window, example_index)) * tf.gather(step, example_index)
    length = tf.minimum(tf.gather(num_tokens, example_index) - doc_start,
                        tf.gather(room, example_index))                        # [W]
    q_len = tf.gather(query_length, example_index)[:, tf.newaxis]              # [W, 1]

    position = tf.range(seq)[tf.newaxis, :]                                    # [1, S]
    relative = position - (q_len + 2)            # index into the window's context, [W, S]
    length_col = length[:, tf.newaxis]
    in_query = (position >= 1) & (position <= q_len)
    in_context = (relative >= 0) & (relative < length_col)
    is_sep = (position == q_len + 1) | (relative == length_col)

    # Gathers from the flat pieces with one extra (never used) element at the end, the index that
    # positions outside the query / context point at, so an all-empty batch still gathers.
    query_flat = tf.concat([query.flat_values, [tokenizer.pad_id]], 0)
    query_index = tf.where(
        in_query, tf.gather(tf.cast(query.row_splits[:-1], tf.int32), example_index)[:, tf.newaxis]
        + position - 1, tf.shape(query_flat)[0] - 1)                           # [W, S]
    token = (tf.gather(tf.cast(context_ids.row_splits[:-1], tf.int32), example_index)
             + doc_start)[:, tf.newaxis] + relative   # row-major index of the context piece
    num_pieces = tf.shape(context_ids.flat_values)[0]
    token = tf.where(in_context, token, num_pieces)                             # [W, S]
    context_flat = tf.concat([context_ids.flat_values, [tokenizer.pad_id]], 0)
    input_ids = tf.where(
        position == 0, tokenizer.cls_id,
        tf.where(in_query, tf.gather(query_flat, query_index),
                 tf.where(in_context, tf.gather(context_flat, token),
                          tf.where(is_sep, tokenizer.sep_id, tokenizer.pad_id))))
    in_segment_b = (relative >= 0) & (relative <= length_col)   # context window and its [SEP]
    token_type_ids = tf.cast(in_segment_b, tf.int32)
    attention_mask = tf.cast(position <= q_len + 2 + length_col, tf.int32)

    def offsets(name):
        flat = tf.concat([pieces[name].flat_values, tf.constant([-1], tf.int64)], 0)
        return tf.where(in_context, tf.gather(flat, token), tf.constant(-1, tf.int64))

    # Max context (squad_features._is_max_context), in float64 as Python computes it:
    # score = min(left, right) + 0.01 * window length; the best window per context piece is found
    # with segment reductions over the piece's global index (windows of other pieces and positions
    # off the context go to the extra segment num_pieces).
    left_right = tf.cast(tf.minimum(relative, length_col - 1 - relative), tf.float64)
    score = left_right + 0.01 * tf.cast(length_col, tf.float64)                # [W, S]
    segments = num_pieces + 1
    best = tf.math.unsorted_segment_max(score, token, segments)                # [pieces + 1]
    is_best = in_context & (score == tf.gather(best, token))
    windows_col = tf.broadcast_to(window[:, tf.newaxis], tf.shape(token))
    best_window = tf.math.unsorted_segment_min(
        tf.where(is_best, windows_col, num_windows), token, segments)
    token_is_max_context = in_context & (tf.gather(best_window, token) == windows_col)

    return {"input_ids": tf.cast(input_ids, tf.int32), "token_type_ids": token_type_ids,
            "attention_mask": attention_mask, "example_index": example_index,
            "start_offsets": offsets("start_offsets"), "end_offsets": offsets("end_offsets"),
            "token_is_max_context": token_is_max_context}


def decode_answers(start_logits, end_logits, windows: dict, context, n_best_size: int,
                   max_answer_length: int, version_2: bool = False,
                   null_score_diff_threshold: float = 0.0) -> dict:
    """Per-window logits [W, S] -> the answer of each of the B rows.

    windows: `qa_windows`' example_index, start_offsets, end_offsets, token_is_max_context and
    attention_mask (padding takes no part in the n-best lists: its logits are undefined, and an
    export that cuts or packs padding returns zeros there); context: the [B] strings they index. Returns answer [B] string; score [B] float32 (start + end
    logit of the answer; the null score for a 2.0 "" answer; 0 when v1 finds no valid span);
    answer_start / answer_end [B] int64 character offsets into the context (-1 for "").
    """
    n_best_size, max_answer_length = int(n_best_size), int(max_answer_length)
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size and max_answer_length must be at least 1, got "
                         f"{n_best_size} and {max_answer_length}")
    threshold = float(null_score_diff_threshold)
    context = _string_batch(context, "context")
    start = tf.cast(start_logits, tf.float64)                                  # [W, S]
    end = tf.cast(end_logits, tf.float64)
    if start.shape.rank != 2 or end.shape.rank != 2:
        raise ValueError(f"start/end logits must be [windows, seq], got {start.shape} and {end.shape}")
    example_index = tf.cast(windows["example_index"], tf.int32)                # [W]
    start_offsets = tf.cast(windows["start_offsets"], tf.int64)                # [W, S]
    end_offsets = tf.cast(windows["end_offsets"], tf.int64)
    shapes_agree = tf.debugging.assert_equal(
        tf.stack([tf.shape(start), tf.shape(end)]),
        tf.stack([tf.shape(start_offsets), tf.shape(start_offsets)]),
        message="start/end logits must match the windows' [windows, seq]")
    rows = tf.shape(context)[0]
    with tf.control_dependencies([shapes_agree]):
        num_windows = tf.shape(start)[0]
    on_context = start_offsets >= 0
    can_start = on_context & tf.cast(windows["token_is_max_context"], tf.bool)
    attended = tf.cast(windows["attention_mask"], tf.int32) > 0                # [W, S]
    start = tf.where(attended, start, tf.constant(float("-inf"), tf.float64))
    end = tf.where(attended, end, tf.constant(float("-inf"), tf.float64))

    # The k best start and end positions of each window (top_k keeps the lower index first on
    # ties, like decode_spans' stable argsort) and the [W, k, k] grid of their pairs.
    k = tf.minimum(n_best_size, tf.shape(start)[1])
    top_start_logit, top_start = tf.math.top_k(start, k)                       # [W, k]
    top_end_logit, top_end = tf.math.top_k(end, k)
    start_ok = tf.gather(can_start, top_start, batch_dims=1)                   # [W, k]
    end_ok = tf.gather(on_context, top_end, batch_dims=1)
    span_length = top_end[:, tf.newaxis, :] - top_start[:, :, tf.newaxis] + 1  # [W, k, k]
    valid = (start_ok[:, :, tf.newaxis] & end_ok[:, tf.newaxis, :]
             & (span_length >= 1) & (span_length <= max_answer_length))
    pair_score = top_start_logit[:, :, tf.newaxis] + top_end_logit[:, tf.newaxis, :]
    valid = tf.reshape(valid, [num_windows, k * k])                            # pair a * k + c
    pair_score = tf.reshape(pair_score, [num_windows, k * k])

    # Best pair per window (the lowest pair index among equal scores), then per row (the earliest
    # window among equal scores).
    neg_inf = tf.constant(float("-inf"), tf.float64)
    window_score = tf.reduce_max(tf.where(valid, pair_score, neg_inf), axis=1)  # [W]
    window_valid = tf.reduce_any(valid, axis=1)
    pairs = tf.range(k * k)[tf.newaxis, :]
    window_pair = tf.reduce_min(
        tf.where(valid & (pair_score == window_score[:, tf.newaxis]), pairs, k * k), axis=1)
    row_score = tf.math.unsorted_segment_max(
        tf.where(window_valid, window_score, neg_inf), example_index, rows)     # [B]
    has_span = tf.math.unsorted_segment_max(
        tf.cast(window_valid, tf.int32), example_index, rows) > 0               # [B]
    is_row_best = window_valid & (window_score == tf.gather(row_score, example_index))
    best_window = tf.math.unsorted_segment_min(
        tf.where(is_row_best, tf.range(num_windows), num_windows), example_index, rows)
    # Rows without a span read window 0's entries (every row has a window, so B > 0 => W > 0)
    # and are masked below.
    best_window = tf.where(has_span, best_window, 0)                           # [B]
    pair = tf.minimum(tf.gather(window_pair, best_window), k * k - 1)
    at = tf.stack([best_window, pair // k], -1)
    at_end = tf.stack([best_window, pair % k], -1)
    start_logit = tf.gather_nd(top_start_logit, at)                            # [B] float64
    end_logit = tf.gather_nd(top_end_logit, at_end)
    start_token = tf.gather_nd(top_start, at)
    end_token = tf.gather_nd(top_end, at_end)
    span_score = start_logit + end_logit

    if version_2:
        null = tf.math.unsorted_segment_min(start[:, 0] + end[:, 0], example_index, rows)  # [B]
        # decode_spans takes the first non-null entry of its n-best list, which is the best span:
        # only the null can rank above it, and could fill the list alone only with n_best_size 1,
        # where a valid span is its window's top start and end, so its score is >= that window's
        # [CLS] score >= the null (and ties list the span first).
        diff = (null - start_logit) - end_logit       # decode_spans' order of float operations
        answered = has_span & ~(diff > threshold)
        empty_score = null
    else:
        answered = has_span
        empty_score = tf.zeros_like(span_score)

    byte_start = tf.gather_nd(start_offsets, tf.stack([best_window, start_token], -1))
    byte_end = tf.gather_nd(end_offsets, tf.stack([best_window, end_token], -1))
    byte_start = tf.where(answered, byte_start, 0)
    byte_end = tf.where(answered, byte_end, 0)
    answer = tf.strings.substr(context, byte_start, byte_end - byte_start)

    def characters(byte_offset):  # UTF-8 byte offset -> character offset
        chars = tf.strings.length(tf.strings.substr(context, tf.zeros_like(byte_offset), byte_offset), unit="UTF8_CHAR")
        return tf.where(answered, tf.cast(chars, tf.int64), tf.constant(-1, tf.int64))

    return {"answer": answer,
            "score": tf.cast(tf.where(answered, span_score, empty_score), tf.float32),
            "answer_start": characters(byte_start), "answer_end": characters(byte_end)}
