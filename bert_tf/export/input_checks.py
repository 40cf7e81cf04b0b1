"""In-graph checks of the id inputs of the serving signatures (`serve_ids`, `serve_examples`).

Why in the graph: the checks must travel with the SavedModel (TF Serving, a fresh Python process
with only tensorflow + tensorflow_text) and must not rely on the embedding lookup: Keras' `take`
wraps negative ids (id -7 would read row V-7), TensorFlow's gather on GPU returns zeros for ids
past the table, and `serve_examples` parses int64, so a cast to int32 before checking would alias
2**32 + 2000 to 2000. Each failed check raises InvalidArgumentError whose message starts with the
field's name and the allowed range, e.g. "input_ids: ids must be in [0, 30522)".

All checks are dtype-agnostic (int32 from `serve_ids`, int64 from `serve_examples`, before any cast)
and hold trivially for an empty batch.
"""

from __future__ import annotations

import tensorflow as tf


def range_checks(values, low: int, high: int, message: str) -> list:
    """Assert ops: every element of `values` (any int dtype, any shape) lies in [low, high)."""
    values = tf.convert_to_tensor(values)
    return [tf.debugging.assert_greater_equal(values, tf.cast(low, values.dtype), message=message),
            tf.debugging.assert_less(values, tf.cast(high, values.dtype), message=message)]


def id_checks(features: dict, vocab_size: int, type_vocab_size: int) -> list:
    """Assert ops for the three id inputs (int [b, s] each, or ragged/flat values)."""
    return (range_checks(features["input_ids"], 0, vocab_size,
                         f"input_ids: ids must be in [0, {vocab_size})")
            + range_checks(features["token_type_ids"], 0, type_vocab_size,
                           f"token_type_ids: type ids must be in [0, {type_vocab_size})")
            + range_checks(features["attention_mask"], 0, 2,
                           "attention_mask: values must be 0 or 1"))


def length_checks(input_ids) -> list:
    """input_ids int [b, s]: a non-empty batch needs at least one position ([CLS]); an empty batch
    ([0, s], any s) is allowed and gives empty outputs."""
    shape = tf.shape(input_ids)
    return [tf.debugging.Assert(
        tf.logical_or(tf.equal(shape[0], 0), tf.greater(shape[1], 0)),
        ["input_ids: sequences must have at least one position, got shape", shape])]


def example_checks(parsed: dict) -> list:
    """parsed: RaggedTensors [b, (n)] per id feature, as `serve_examples` parses them. In every
    example, input_ids must be present and non-empty, attention_mask must give one value per id,
    and token_type_ids one value per id or none at all (all segment 0)."""
    ids = parsed["input_ids"].row_lengths()
    mask = parsed["attention_mask"].row_lengths()
    types = parsed["token_type_ids"].row_lengths()
    return [
        tf.debugging.assert_positive(
            ids, message="serve_examples: input_ids is missing or empty in an example "
                         "(row lengths follow)"),
        tf.debugging.assert_equal(
            mask, ids, message="serve_examples: attention_mask is missing or has another length "
                               "than input_ids in an example (x: attention_mask, y: input_ids)"),
        tf.debugging.Assert(
            tf.reduce_all(tf.logical_or(tf.equal(types, ids), tf.equal(types, 0))),
            ["serve_examples: token_type_ids must be absent (segment 0) or have the length of "
             "input_ids in each example; token_type_ids lengths:", types,
             "input_ids lengths:", ids]),
    ]
