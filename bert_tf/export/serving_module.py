"""The SavedModel's contents: a `tf.Module` holding the Keras model, the task (with its tokenizer)
and three signatures.

    serving_default   raw text -> the task's answers: exactly `bert_tf.tasks.inference`'s path
                      (the task's tokenization and windows, the model, the task's decoder), the
                      one `bert-tf predict` runs. Inputs are the task's `serving_input_names`
                      (classification: text [b] (+ text_pair [b] for a pair model); NER: text;
                      SQuAD: question, context), outputs its `decode` outputs.
    serve_ids         input_ids, token_type_ids, attention_mask int32 [b, s] -> raw model outputs
    serve_examples    examples [b] serialized tf.Example (int64 lists `input_ids`,
                      `attention_mask` and optionally `token_type_ids`) -> the same as serve_ids

Bad ids fail in the graph with InvalidArgumentError naming the field (`input_checks`): ids outside
[0, vocab_size) (negative included), type ids outside [0, type_vocab_size), a mask other than 0/1,
int64 values past int32 in `serve_examples` (checked before the cast), a non-empty batch with
zero positions, and tf.Examples whose features are missing or of different lengths. An empty
batch gives empty outputs.

Without a task (no tokenizer), `serving_default` is `serve_ids` (clients tokenize themselves).

Only the model run differs from predict's, and only in ways that are exact: every signature cuts
the batch's trailing padding before the encoder (`trimming`; padded positions have zero attention
weight) and pads per-token outputs back to the input's length; the model runs on packed tokens
(`packing`): its position-wise layers see the batch's real tokens only (a classifier's last layer
the [CLS] rows only). With `jit_compile=True` the model runs as one XLA function (one executable per batch
shape; the length and token-count buckets bound their number).

The module tracks `[v.value for v in model.variables]`: Keras 3 variables wrap a tf.Variable, and
without the inner ones in the object graph the loader (and the TFLite converter) would see
uncaptured or missing variables.
"""

from __future__ import annotations

import types

import numpy as np
import tensorflow as tf

from bert_tf.export import input_checks
from bert_tf.layers import packed as packing
from bert_tf.export.trimming import (AUTO, DEFAULT_GROUP_SIZE, is_count, resolve_bucket,
                                     run_in_length_groups, run_trimmed)
from bert_tf.models.encoder import INPUT_NAMES as ID_NAMES
from bert_tf.tasks.inference import serving_function

SIGNATURE_NAMES = ("serving_default", "serve_ids", "serve_examples")


def ids_signature():
    return {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ID_NAMES}


def output_specs(model) -> tuple:
    """The task model's raw outputs: (name -> TensorSpec float32 with unknown batch and length,
    names of the outputs with a position axis [b, s, ...]). Read off two tiny eager calls (lengths
    5 and 6): the dimensions that follow the length are the position axis."""
    shapes = []
    for length in (5, 6):
        ids = np.zeros([1, length], np.int32)
        outputs = model({"input_ids": ids, "token_type_ids": ids,
                         "attention_mask": np.ones_like(ids)}, training=False)
        shapes.append({name: tuple(value.shape) for name, value in outputs.items()})
    specs, per_token = {}, []
    for name, short in shapes[0].items():
        long = shapes[1][name]
        positional = len(short) >= 2 and short[1] == 5 and long[1] == 6
        if positional:
            per_token.append(name)
        specs[name] = tf.TensorSpec([None, None, *short[2:]] if positional else [None, *short[1:]],
                                    tf.float32)
    return specs, tuple(per_token)


class BertServingModule(tf.Module):
    """Signatures for one task model; `signatures()` gives them to `tf.saved_model.save`.

    task: the task object (`bert_tf.tasks`, holding the exact tokenizer), or None (then
      `serving_default` is `serve_ids`).
    trim_bucket: cut trailing padding to a multiple of this many positions (None or 0: never cut;
      "auto": 8 with XLA, the exact length without).
    group_size: with trimming, sort the batch by length and run it this many rows at a time, each
      group cut to its own longest row (None or 0: the whole batch as one group).
    jit_compile: run the model as an XLA function.
    pack: run the model on packed tokens (`packing`; exact; groups are then not needed);
      "auto" (default) and True: packed, False: the padded [b, t] layout in length groups.
    """

    def __init__(self, model, task, trim_bucket=AUTO, group_size=DEFAULT_GROUP_SIZE,
                 jit_compile: bool = False, pack=AUTO):
        super().__init__(name="bert_serving")
        if not is_count(group_size):
            raise ValueError(f"group_size must be a non-negative integer or None, got "
                             f"{group_size!r}")
        trim_bucket = resolve_bucket(trim_bucket, jit_compile)
        if pack == AUTO:
            pack = True
        elif not isinstance(pack, bool):
            raise ValueError(f"pack must be True, False or {AUTO!r}, got {pack!r}")

        def compiled(fn):
            return tf.function(fn, jit_compile=True, reduce_retracing=True) if jit_compile else fn

        if pack:
            token_bucket = packing.DEFAULT_TOKEN_BUCKET if jit_compile else packing.EXACT_TOKENS
            packed = compiled(lambda features, positions, inverse: {
                k: tf.cast(v, tf.float32) for k, v in model.forward(
                    features, packing=(positions, inverse)).items()})

            def run_model(features):
                # The index has a data-dependent size: built outside the (XLA) function.
                positions, inverse = packing.packing_index(features["attention_mask"], token_bucket)
                return packed(features, positions, inverse)
            group_size = None   # packing skips every padded position: no length groups needed
        else:
            @compiled
            def run_model(features):
                outputs = model(features, training=False)
                return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}

        # Held outside the object graph: tracking the Keras model would also save its optimizer
        # (twice the weights again); the functions only need the variables tracked below.
        self._untracked = types.SimpleNamespace(model=model, run_model=run_model, task=task)
        self._trim_bucket = trim_bucket
        self._group_size = group_size or None
        self._pack = pack
        self._output_specs, self._per_token = output_specs(model)
        self.tokenizer = None if task is None else task.tokenizer
        # See the module docstring: the loader must find the tf.Variables themselves.
        self.model_variables = [v.value for v in model.variables]
        self.serve_ids = tf.function(self._serve_ids, input_signature=[ids_signature()])
        self.serve_examples = tf.function(
            self._serve_examples,
            input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        if task is None:
            self.serving_default = self.serve_ids
            return
        self._text_names = tuple(task.serving_input_names)
        self._serve = serving_function(task, self.logits)
        text_spec = [tf.TensorSpec([None], tf.string, name=n) for n in self._text_names]
        self.serving_default = tf.function(self._serve_text, input_signature=text_spec)

    @property
    def task(self):
        return self._untracked.task

    def signatures(self) -> dict:
        return {"serving_default": self.serving_default.get_concrete_function(),
                "serve_ids": self.serve_ids.get_concrete_function(),
                "serve_examples": self.serve_examples.get_concrete_function()}

    # ------------------------------------------------------------------ raw logits
    def logits(self, features) -> dict:
        """features: int32 [b, s] ids dict -> the model's raw outputs (float32); per-token outputs
        ([b, s, ...]) keep the input's s even when the padding was cut off."""
        features = {k: features[k] for k in ID_NAMES}
        if self._trim_bucket is None:
            return self._untracked.run_model(features)
        if self._group_size is not None:
            return run_in_length_groups(self._untracked.run_model, features, self._output_specs,
                                        self._trim_bucket, self._group_size, self._per_token)
        return run_trimmed(self._untracked.run_model, features, self._trim_bucket,
                           self._per_token)

    def _serve_ids(self, features):
        ids = features["input_ids"]
        config = self._untracked.model.encoder.config
        checks = [tf.debugging.assert_equal(
            tf.shape(features[name]), tf.shape(ids),
            message=f"{name} must have the shape of input_ids") for name in ID_NAMES[1:]]
        checks.append(tf.debugging.assert_less(
            tf.shape(ids)[1], config.max_position_embeddings + 1,
            message=f"sequences are longer than the model's "
                    f"{config.max_position_embeddings} positions"))
        checks += input_checks.length_checks(ids)
        checks += input_checks.id_checks(features, config.vocab_size, config.type_vocab_size)
        with tf.control_dependencies(checks):
            features = {k: tf.identity(v) for k, v in features.items()}
        # An empty batch [0, s] gives empty outputs; the model still needs one position to run
        # (s = 0 is padded to 1 and per-token outputs are cut back to [0, 0, ...]).
        length = tf.shape(ids)[1]
        extra = tf.where(tf.equal(tf.shape(ids)[0], 0), tf.maximum(1 - length, 0), 0)
        features = {k: tf.pad(v, [[0, 0], [0, extra]]) for k, v in features.items()}
        outputs = self.logits(features)
        return {k: v[:, :length] if k in self._per_token else v for k, v in outputs.items()}

    def _serve_examples(self, examples):
        # Ragged per example, so that each example's features can be checked against each other
        # (`input_checks.example_checks`), and in int64 range before the cast to int32 (no
        # aliasing of 2**32 + id). Rows of different lengths are then padded with 0 to the
        # longest: [PAD] / segment 0 / masked out, exactly BERT's padding.
        parsed = tf.io.parse_example(examples, {name: tf.io.RaggedFeature(tf.int64)
                                                for name in ID_NAMES})
        config = self._untracked.model.encoder.config
        checks = input_checks.example_checks(parsed)
        checks += input_checks.id_checks({k: v.flat_values for k, v in parsed.items()},
                                         config.vocab_size, config.type_vocab_size)
        with tf.control_dependencies(checks):
            ids = parsed["input_ids"].to_tensor()                                   # [b, s]
            shape = tf.shape(ids, out_type=tf.int64)
            features = {k: tf.cast(v.to_tensor(shape=shape), tf.int32)
                        for k, v in parsed.items()}
        return self._serve_ids(features)

    # ------------------------------------------------------------------ raw text
    def _serve_text(self, *texts):
        # The signature says [batch], but a loaded SavedModel (and some clients) pass other ranks
        # through; size == dim 0 holds only for [batch] (and [batch, 1], which means the same).
        checks = [tf.debugging.assert_equal(
            tf.size(t), tf.shape(t)[0],
            message=f"{name} must be a 1-D batch of strings, shape [batch]")
            for t, name in zip(texts, self._text_names)]
        checks += [tf.debugging.assert_equal(
            tf.shape(t), tf.shape(texts[0]),
            message=f"{self._text_names[0]} and {name} need the same batch size")
            for t, name in zip(texts[1:], self._text_names[1:])]
        with tf.control_dependencies(checks):
            texts = {name: tf.reshape(t, [-1]) for t, name in zip(texts, self._text_names)}
        return self._serve(texts)
