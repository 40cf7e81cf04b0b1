"""The one inference path of every task: raw inputs → answers, in TensorFlow graph ops.

    texts {name: tf.string [B]}                 names: task.serving_input_names
      → task.serving_features(texts)            → (model inputs int32 [W, S], decoding state)
      → run_model(model inputs)                 → model outputs float32 [W, ...]
      → task.decode(outputs, state, texts)      → answers, leading dimension B

W ≥ B: windowed tasks (NER, SQuAD) cut a long input into several windows. `bert-tf predict`,
`bert-tf evaluate`, the evaluations during fine-tuning and the exported SavedModel's
`serving_default` all run `serving_function`, so what predict answers is what the server answers:
the export only swaps `run_model` for an exact, faster version (padding trimmed, tokens packed,
XLA), never the tokenization or the decoding.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf


def plain_run_model(model):
    """`model(features)` with dropout off, outputs as float32 tensors."""
    def run_model(features):
        outputs = model(features, training=False)
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}
    return run_model


def serving_function(task, run_model):
    """texts dict → the task's answers (see the module docstring)."""
    def serve(texts: dict) -> dict:
        features, state = task.serving_features(texts)
        outputs = run_model(features)
        return task.decode(outputs, state, texts)
    return serve


def text_signature(task) -> dict:
    """The `serving_default` input signature: one [batch] string tensor per input name."""
    return {name: tf.TensorSpec([None], tf.string, name=name) for name in task.serving_input_names}


def padded_rows(run_model, multiple: int):
    """`run_model` on [W, S] features padded to a multiple of `multiple` rows (all-padding rows,
    dropped from the outputs). Under XLA this bounds the number of compiled shapes when the window
    count varies from batch to batch."""
    def run(features):
        rows = tf.shape(features["input_ids"])[0]
        padded = (rows + multiple - 1) // multiple * multiple
        extra = {name: tf.pad(value, [[0, padded - rows], [0, 0]])
                 for name, value in features.items()}
        return {name: value[:rows] for name, value in run_model(extra).items()}
    return run


# model -> {(task id, jit_compile): traced serving function}: evaluating every epoch must not
# retrace (or recompile).
_TRACED = weakref.WeakKeyDictionary()


def traced_serving_function(task, model, jit_compile: bool = False, row_multiple: int = 64):
    """`serving_function(task, model)` as one tf.function over [None] string inputs, cached per
    model. With `jit_compile` the model (not the tokenizer, whose string ops XLA cannot compile)
    runs as an XLA function on row counts rounded up to `row_multiple`."""
    cache = _TRACED.setdefault(model, {})
    key = (id(task), jit_compile)
    if key not in cache:
        run_model = plain_run_model(model)
        if jit_compile:
            run_model = padded_rows(tf.function(run_model, jit_compile=True), row_multiple)
        cache[key] = (task, tf.function(serving_function(task, run_model),
                                         input_signature=[text_signature(task)]))
    return cache[key][1]


def pad_value(dtype):
    """What fills the extra entries when batches with different inner sizes are concatenated:
    "" for strings, -1 for integers (offsets, counts never need it), 0 for floats."""
    if dtype.kind in "SUO":
        return b""
    if dtype.kind in "iu":
        return -1
    return 0


def concatenate_batches(parts: list) -> dict:
    """[{name: array [b_i, ...]}] → {name: array [sum b_i, ...]}, inner dimensions padded to the
    largest batch's (entity and word tables are as wide as the widest row of their own batch)."""
    if not parts:
        return {}
    out = {}
    for name in parts[0]:
        arrays = [p[name] for p in parts]
        widest = np.max([a.shape[1:] for a in arrays], axis=0) if arrays[0].ndim > 1 else ()
        padded = []
        for a in arrays:
            missing = [(0, 0)] + [(0, int(w) - s) for w, s in zip(widest, a.shape[1:])]
            padded.append(np.pad(a, missing, constant_values=pad_value(a.dtype))
                          if any(m for _, m in missing) else a)
        out[name] = np.concatenate(padded, axis=0)
    return out


def decode_strings(decoded: dict) -> dict:
    """bytes arrays → str arrays (UTF-8), so rows and metrics see Python strings."""
    return {name: np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value)
            if value.dtype.kind in "SO" and value.size else value
            for name, value in decoded.items()}


def run_inference(task, model, records, batch_size: int = 64, jit_compile: bool = False) -> dict:
    """The task's answers for every record: {name: numpy array [n, ...]} (strings as str).

    Records go through `task.record_texts` (the raw inputs each record stands for) and then the
    same traced serving function the SavedModel exports, `batch_size` records at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    texts = task.record_texts(records)
    names = task.serving_input_names
    if set(texts) != set(names):
        raise ValueError(f"{type(task).__name__}.record_texts gave {sorted(texts)}, expected "
                         f"{list(names)}")
    n = len(texts[names[0]])
    serve = traced_serving_function(task, model, jit_compile)
    parts = []
    for start in range(0, n, batch_size):
        batch = {name: tf.constant(list(texts[name][start:start + batch_size]), tf.string)
                 for name in names}
        parts.append({name: np.asarray(value) for name, value in serve(batch).items()})
    return decode_strings(concatenate_batches(parts))
