"""`convert_tflite`: a fixed-shape TFLite model of a bert_tf task model, optionally with the
tokenizer inside, and `verify_tflite`: the `.tflite` run with ai-edge-litert against Keras.

Signatures (the SavedModel's names):
    serve_ids         input_ids, token_type_ids, attention_mask int32 [1, N] -> raw model outputs
    serving_default   (with the tokenizer, for tasks whose whole serving path fits TFLite:
                      classification and regression) the task's text inputs [1] -> its answers,
                      decoded by the task's own `decode` (the one predict and the SavedModel use)

Windowed tasks (NER, SQuAD) need ragged tokenization and a variable window count, which TFLite's
fixed shapes cannot hold: their TFLite model is `serve_ids` (one window), and
`bert_tf.export.tflite_runner.TFLiteTaskRunner` runs the task's windows and decoder around it.

Why it looks the way it does:
* Fixed shapes ([1, N]): TFLite plans memory once, and on-device callers feed one text at a time.
* Quantization-friendly attention mask: the Keras model adds BERT's -10000 to masked attention
  scores. Full-int8 calibration would then see scores in [-10000, 10] and spend the whole int8
  range on the mask (a step of ~80: every real score rounds to the same value). Here the same
  weights run with a -100 mask instead: exp(-100) ~ 4e-44 is still exactly "no attention" in
  float32 arithmetic (parity with Keras is tested), and the calibrated range stays ~[-110, 10].
* Ids outside the tables fail, never alias: `serve_ids` maps every id outside [0, vocab_size)
  (and type id outside [0, type_vocab_size)) to the table's size, an index TFLite's GATHER
  refuses ("gather index out of bounds"), where Keras' `take` would wrap a negative id to the
  table's end. TFLite builtins have no assert op that carries a message, so the error does not
  name the field there; on the SavedModel's signatures it does.
* The tokenizer is the `tflite_compatible` `BertTokenizer` (tensorflow-text's FastBertNormalize +
  FastWordpieceTokenize custom ops, which `tf_text.tflite_registrar.SELECT_TFTEXT_OPS` provides),
  and packing is dense ops only, so no ragged op and no Flex (SELECT_TF_OPS) op is needed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import types

import numpy as np
import tensorflow as tf

from bert_tf.atomic import clean_stale_temps, temp_prefix
from bert_tf.export.errors import ExportError
from bert_tf.export.serving_module import ID_NAMES

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
TFLITE_MASK_VALUE = -100.0


def lite_forward(model, features) -> dict:
    """The task model's forward pass with the TFLite attention mask; same weights, same layers.
    features: int32 [b, N] dict -> the model's outputs (float32)."""
    return model.forward(features, mask_value=TFLITE_MASK_VALUE)


def out_of_table(features, vocab_size: int, type_vocab_size: int) -> dict:
    """int32 [b, N] ids dict with every id outside its table replaced by the table's size (an
    index the embedding lookup refuses instead of wrapping; see the module docstring)."""
    def refuse(values, size):
        return tf.where((values < 0) | (values >= size), tf.fill(tf.shape(values), size), values)
    return {**features, "input_ids": refuse(features["input_ids"], vocab_size),
            "token_type_ids": refuse(features["token_type_ids"], type_vocab_size)}


def lite_task(task, sequence_length: int):
    """The task over the TFLite-compatible tokenizer (tensorflow-text's FastBert ops, dense
    packing) of `sequence_length`."""
    from bert_tf.tasks.registry import with_tokenizer
    from bert_tf.text import BertTokenizer
    tokenizer = task.tokenizer
    return with_tokenizer(task, BertTokenizer(tokenizer.get_vocabulary(),
                                              lowercase=tokenizer.lowercase,
                                              sequence_length=sequence_length,
                                              tflite_compatible=True))


class TFLiteModule(tf.Module):
    def __init__(self, model, sequence_length, task=None):
        super().__init__(name="bert_tflite")
        # Held outside the object graph: tracking the Keras model would also save its optimizer
        # (twice the weights again); the functions only need the variables tracked below.
        self._untracked = types.SimpleNamespace(model=model, task=task)
        # Keras 3 variables wrap tf.Variables: the converter must see the inner ones to freeze them.
        self.model_variables = [v.value for v in model.variables]
        ids_spec = {name: tf.TensorSpec([1, sequence_length], tf.int32, name=name)
                    for name in ID_NAMES}
        config = model.encoder.config
        self.serve_ids = tf.function(
            lambda features: lite_forward(self._untracked.model, out_of_table(
                features, config.vocab_size, config.type_vocab_size)),
            input_signature=[ids_spec])
        self.tokenizer = None
        if task is not None:
            self._untracked.task = lite_task(task, sequence_length)
            self.tokenizer = self._untracked.task.tokenizer
            names = task.serving_input_names
            self.serving_default = tf.function(
                self._serve_text, input_signature=[tf.TensorSpec([1], tf.string, name=n) for n in names])

    def signatures(self) -> dict:
        out = {"serve_ids": self.serve_ids.get_concrete_function()}
        if self.tokenizer is not None:
            out["serving_default"] = self.serving_default.get_concrete_function()
        return out

    def _serve_text(self, *texts):
        task = self._untracked.task
        texts = dict(zip(task.serving_input_names, texts))
        features, state = task.serving_features(texts)
        outputs = task.decode(lite_forward(self._untracked.model, features), state, texts)
        # TFLite has no string outputs worth shipping: label names are in the labels file.
        outputs = {k: v for k, v in outputs.items() if v.dtype != tf.string}
        outputs["input_ids"] = features["input_ids"]
        return outputs


def _converter(saved_model_dir, signature_keys, quantize, with_tokenizer, representative_data):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=signature_keys)
    # TFLITE_BUILTINS only (no SELECT_TF_OPS: no Flex delegate in ai-edge-litert's interpreter);
    # the tokenizer's tensorflow-text ops stay as custom ops resolved by its registrar.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = with_tokenizer
    if with_tokenizer:
        import tensorflow_text as tf_text
        # int8 calibration runs the model: the calibrator needs the same custom-op kernels.
        converter.target_spec._experimental_custom_op_registerers = list(
            tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if representative_data is None:
            raise ExportError("int8 quantization needs representative_data (a few hundred "
                              "examples from the task's own data) to calibrate activations")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if with_tokenizer:  # the tokenizer's string ops have no int8 kernels: they stay float
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.representative_dataset = representative_data
    return converter


def representative_dataset(tokenizer, texts, sequence_length, with_tokenizer, task=None):
    """A calibration generator over real task texts, one example per step, per signature."""
    from bert_tf.text import BertTokenizer
    exact = BertTokenizer(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                          sequence_length=sequence_length)
    texts = list(texts)

    def generate():
        for text in texts:
            segments = text if isinstance(text, tuple) else (text,)
            features = exact(tuple(tf.constant([s]) for s in segments) if len(segments) == 2
                             else tf.constant([segments[0]]))
            yield "serve_ids", {k: np.asarray(features[k], np.int32) for k in ID_NAMES}
            if with_tokenizer:
                names = task.serving_input_names
                yield "serving_default", {n: tf.constant([s]) for n, s in zip(names, segments)}
    return generate


def convert_tflite(model, out_path, quantize="none", sequence_length=None, tokenizer=None,
                   representative_data=None, labels=None, pair=None, task=None,
                   with_tokenizer=None) -> str:
    """Converts a bert_tf task model to `out_path` (.tflite); returns the path.

    model: a Keras task model, or a fine-tuned model directory / `FinetunedModel` (its task,
    tokenizer and max_length are then used). quantize: "none" (float32), "float16" (weights),
    "dynamic" (int8 weights, float activations) or "int8" (weights and activations, calibrated on
    `representative_data`: texts (or (text, text_pair) tuples) from the task's data, or a ready
    TFLite representative-dataset callable). tokenizer/labels/pair: the task of a bare Keras model.
    with_tokenizer: put the tokenizer and the task's decoding inside (`serving_default` takes
    text); default: whenever a tokenizer is known and the task's serving path fits TFLite.
    """
    from bert_tf.export.saved_model import resolve_source
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if quantize == "int8" and representative_data is None:
        raise ExportError("int8 quantization needs representative_data (a few hundred examples "
                          "from the task's own data) to calibrate activations")
    model, task = resolve_source(model, tokenizer, labels, pair, task)
    if sequence_length is None:
        sequence_length = task.tokenizer.sequence_length if task is not None else 128
    if isinstance(sequence_length, bool) or not isinstance(sequence_length, (int, np.integer)):
        raise ExportError(f"sequence_length must be an integer, got {sequence_length!r}")
    sequence_length = int(sequence_length)
    if not 3 <= sequence_length <= model.encoder.config.max_position_embeddings:
        raise ExportError(f"sequence_length must be in [3, "
                          f"{model.encoder.config.max_position_embeddings}], got {sequence_length}")
    lite_serving = task is not None and task.lite_serving
    if with_tokenizer is None:
        with_tokenizer = lite_serving
    if with_tokenizer and not lite_serving:
        raise ExportError("the tokenizer goes inside the TFLite model only for tasks whose whole "
                          "serving path fits TFLite (classification, regression)" if task is not None
                          else "with_tokenizer needs a tokenizer (or a model directory)")
    if representative_data is not None and not callable(representative_data):
        if task is None:
            raise ExportError("representative texts need a tokenizer to become ids")
        representative_data = representative_dataset(task.tokenizer, representative_data,
                                                     sequence_length, with_tokenizer, task)
    out_path = os.path.abspath(os.fspath(out_path))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    module = TFLiteModule(model, sequence_length, task if with_tokenizer else None)
    signatures = module.signatures()
    clean_stale_temps(os.path.dirname(out_path))
    workdir = tempfile.mkdtemp(prefix=temp_prefix("tflite"), dir=os.path.dirname(out_path))
    try:
        saved = os.path.join(workdir, "saved_model")
        tf.saved_model.save(module, saved, signatures=signatures)
        converter = _converter(saved, list(signatures), quantize, with_tokenizer,
                               representative_data)
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # the converter's errors are long MLIR dumps: keep the first line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"TFLite conversion ({quantize}) failed: {first}") from e
        tmp = os.path.join(workdir, "model.tflite")
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
        os.replace(tmp, out_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out_path


def interpreter(path: str):
    """An ai-edge-litert interpreter for `path`, with tensorflow-text's custom ops registered."""
    import tensorflow_text as tf_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist")
    return InterpreterWithCustomOps(model_path=path,
                                    custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
