"""SQuAD features: sliding windows over a tokenized context, with the answer mapped to tokens.

Tokenizer independent: the caller gives token ids plus, for each context token, its character span
in the context (`[start, end)`, what a WordPiece tokenizer with offsets returns), so any tokenizer
can feed it. A feature is google-research/bert's layout

    [CLS] query [SEP] context window [SEP] [PAD]...     token_type_ids 0 … 0 1 … 1 0 …

Contexts longer than the room left after the query are cut into windows that start `doc_stride`
tokens apart (run_squad.py's loop, so each token appears in at least one window). A token seen in
several windows is "max context" only in the window where it has the most context on its shorter
side (`token_is_max_context`); decoding only starts answers at such tokens so each answer start is
scored once, where the model saw it best.

Training targets: the answer's first/last context tokens (by character overlap) when the whole
answer lies inside the window, otherwise — and for SQuAD 2.0 impossible questions — start = end =
0, the [CLS] position.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class SquadFeatureError(ValueError):
    """Windowing settings that cannot work, or inputs that do not line up."""


@dataclasses.dataclass(frozen=True)
class SquadFeature:
    example_id: str
    window_index: int              # 0, 1, ... over the windows of one example
    input_ids: np.ndarray          # [seq] int32
    token_type_ids: np.ndarray     # [seq] int32
    attention_mask: np.ndarray     # [seq] int32
    offsets: np.ndarray            # [seq, 2] int32 context char span; (-1, -1) off the context
    token_is_max_context: np.ndarray  # [seq] bool; False off the context
    start_position: int            # answer start token, 0 ([CLS]) when not in this window
    end_position: int


def _doc_spans(num_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list:
    """[(start, length)] windows over `num_tokens` context tokens (run_squad.py's rule)."""
    spans, start = [], 0
    while True:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def _is_max_context(spans: list, span_index: int, position: int) -> bool:
    """Is window `span_index` the one where token `position` has the most context?

    Score = min(tokens to its left, tokens to its right) + 0.01 * window length; ties go to the
    earlier window (the 0.01 term prefers the longer window, as run_squad.py does).
    """
    best_score, best_index = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return best_index == span_index


def answer_token_span(offsets: np.ndarray, start_char: int, end_char: int) -> tuple:
    """(first, last) context token indices covering the characters [start_char, end_char).

    first = first token that ends after start_char; last = last token that starts before end_char.
    A token partly inside the answer is included (the answer "Nieuwl" of "Nieuwland" maps to the
    whole token), which is the best any tokenizer-level span can do.
    """
    offsets = np.asarray(offsets).reshape(-1, 2)
    overlapping = np.nonzero((offsets[:, 1] > start_char) & (offsets[:, 0] < end_char))[0]
    if len(overlapping) == 0:
        raise SquadFeatureError(f"no context token overlaps the answer characters [{start_char}, "
                                f"{end_char})")
    return int(overlapping[0]), int(overlapping[-1])


def create_features(example_id: str, query_ids, context_ids, context_offsets, *,
                    answer_start: int | None = None, answer_end: int | None = None,
                    cls_id: int, sep_id: int, pad_id: int = 0, max_seq_length: int = 384,
                    max_query_length: int = 64, doc_stride: int = 128) -> list:
    """Cuts one question + context into `SquadFeature` windows.

    query_ids: [q] question token ids (no special tokens); truncated to `max_query_length`.
    context_ids: [n] context token ids; context_offsets: [n, 2] their char spans in the context.
    answer_start/answer_end: the answer's char span [start, end) in the context, or None (no
    answer: impossible, or prediction only) — then every window targets [CLS]. A context
    without tokens gives one window [CLS] query [SEP] [SEP], as the serving graph
    (`bert_tf.tasks.squad_graph.qa_windows`) does.
    """
    query_ids = list(query_ids)[:max_query_length]
    context_ids = list(context_ids)
    context_offsets = np.asarray(context_offsets, dtype=np.int64).reshape(-1, 2)
    if len(context_offsets) != len(context_ids):
        raise SquadFeatureError(f"example {example_id}: {len(context_ids)} context tokens but "
                                f"{len(context_offsets)} offsets")
    if doc_stride <= 0:
        raise SquadFeatureError(f"doc_stride must be positive, got {doc_stride}")
    # 3 special tokens: [CLS] query [SEP] context [SEP]
    max_tokens_for_doc = max_seq_length - len(query_ids) - 3
    if max_tokens_for_doc <= 0:
        raise SquadFeatureError(f"max_seq_length={max_seq_length} leaves no room for context after a "
                                f"{len(query_ids)}-token query; raise it or lower max_query_length")
    answer = None
    if (answer_start is None) != (answer_end is None):
        raise SquadFeatureError(f"example {example_id}: give both answer_start and answer_end or neither")
    if answer_start is not None:
        try:
            answer = answer_token_span(context_offsets, answer_start, answer_end)
        except SquadFeatureError as e:
            raise SquadFeatureError(f"example {example_id}: {e}") from None

    spans = _doc_spans(len(context_ids), max_tokens_for_doc, doc_stride)
    features = []
    for span_index, (doc_start, length) in enumerate(spans):
        ids = [cls_id] + query_ids + [sep_id]
        context_first = len(ids)          # position of the window's first context token
        ids += context_ids[doc_start:doc_start + length] + [sep_id]
        n = len(ids)
        input_ids = np.full([max_seq_length], pad_id, np.int32)
        input_ids[:n] = ids
        token_type_ids = np.zeros([max_seq_length], np.int32)
        token_type_ids[context_first:n] = 1
        attention_mask = np.zeros([max_seq_length], np.int32)
        attention_mask[:n] = 1
        offsets = np.full([max_seq_length, 2], -1, np.int32)
        offsets[context_first:context_first + length] = context_offsets[doc_start:doc_start + length]
        max_context = np.zeros([max_seq_length], bool)
        for i in range(length):
            max_context[context_first + i] = _is_max_context(spans, span_index, doc_start + i)
        start_position = end_position = 0
        if answer is not None and doc_start <= answer[0] and answer[1] < doc_start + length:
            start_position = answer[0] - doc_start + context_first
            end_position = answer[1] - doc_start + context_first
        features.append(SquadFeature(example_id, span_index, input_ids, token_type_ids,
                                     attention_mask, offsets, max_context, start_position, end_position))
    return features


def stack_features(features) -> dict:
    """Model inputs and targets as arrays: input_ids/token_type_ids/attention_mask [f, seq],
    start_positions/end_positions [f], plus offsets [f, seq, 2] and token_is_max_context [f, seq]
    for decoding."""
    if not features:
        raise SquadFeatureError("no features to stack")
    return {
        "input_ids": np.stack([f.input_ids for f in features]),
        "token_type_ids": np.stack([f.token_type_ids for f in features]),
        "attention_mask": np.stack([f.attention_mask for f in features]),
        "start_positions": np.array([f.start_position for f in features], np.int32),
        "end_positions": np.array([f.end_position for f in features], np.int32),
        "offsets": np.stack([f.offsets for f in features]),
        "token_is_max_context": np.stack([f.token_is_max_context for f in features]),
    }


def byte_to_char_offsets(text: str, byte_offsets) -> np.ndarray:
    """[n, 2] UTF-8 byte spans (what tensorflow-text's `tokenize_with_offsets` returns) → character
    spans into `text` (what `create_features` and the decoder expect). They differ once the text
    has a non-ASCII character before the token."""
    encoded = text.encode("utf-8")
    # char_at_byte[b] = index of the character that byte b starts (or continues); [len(bytes)+1]
    char_at_byte = np.zeros(len(encoded) + 1, np.int64)
    position = 0
    for index, ch in enumerate(text):
        width = len(ch.encode("utf-8"))
        char_at_byte[position:position + width] = index
        position += width
    char_at_byte[len(encoded)] = len(text)
    spans = np.asarray(byte_offsets, np.int64).reshape(-1, 2)
    if spans.size and (spans.min() < 0 or spans.max() > len(encoded)):
        raise SquadFeatureError(f"byte offsets outside the {len(encoded)}-byte text")
    return char_at_byte[spans]


def features_for_examples(examples, tokenize, *, cls_id: int, sep_id: int, pad_id: int = 0,
                          max_seq_length: int = 384, max_query_length: int = 64,
                          doc_stride: int = 128, with_answers: bool = True) -> list:
    """Features for `squad.SquadExample`s, with any tokenizer.

    tokenize(text) -> (ids [n], char offsets [n, 2]) for one string (no special tokens). Training
    (`with_answers=True`) targets the first gold answer, as run_squad.py does; impossible questions
    and `with_answers=False` target [CLS].
    """
    features = []
    for example in examples:
        query_ids, _ = tokenize(example.question)
        context_ids, context_offsets = tokenize(example.context)
        answer = example.answers[0] if with_answers and example.answers else None
        features.extend(create_features(
            example.id, query_ids, context_ids, context_offsets,
            answer_start=None if answer is None else answer.start,
            answer_end=None if answer is None else answer.end, cls_id=cls_id, sep_id=sep_id,
            pad_id=pad_id, max_seq_length=max_seq_length, max_query_length=max_query_length,
            doc_stride=doc_stride))
    return features
