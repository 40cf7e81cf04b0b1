"""`convert_tflite`: a fixed-shape TFLite model of a bert_tf task model, optionally with the
tokenizer inside, and `verify_tflite`: the `.tflite` run with ai-edge-litert against Keras.

Signatures (the SavedModel's names):
    serve_ids         input_ids, token_type_ids, attention_mask int32 [1, N] -> raw logits
    serving_default   (with a tokenizer) text [1] (question, context for QA) -> logits and, for
                      classification, probabilities [1, c] and label_ids [1]

Why it looks the way it does:
* Fixed shapes ([1, N]): TFLite plans memory once, and on-device callers feed one text at a time.
* Quantization-friendly attention mask: the Keras model adds BERT's -10000 to masked attention
  scores. Full-int8 calibration would then see scores in [-10000, 10] and spend the whole int8
  range on the mask (a step of ~80: every real score rounds to the same value). Here the same
  weights run with a -100 mask instead: exp(-100) ~ 4e-44 is still exactly "no attention" in
  float32 arithmetic (parity with Keras is tested), and the calibrated range stays ~[-110, 10].
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

from bert_tf.export.serving_module import ID_NAMES, text_input_names
from bert_tf.export.task_spec import CLASSIFICATION, ExportError, spec_for

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
TFLITE_MASK_VALUE = -100.0


def lite_forward(model, features) -> dict:
    """The task model's forward pass with the TFLite attention mask; same weights, same layers.
    features: int32 [b, N] dict -> the model's outputs (float32)."""
    return model.forward(features, mask_value=TFLITE_MASK_VALUE)


class TFLiteModule(tf.Module):
    def __init__(self, model, spec, sequence_length, tokenizer=None):
        super().__init__(name="bert_tflite")
        # Held outside the object graph: tracking the Keras model would also save its optimizer
        # (twice the weights again); the functions only need the variables tracked below.
        self._untracked = types.SimpleNamespace(model=model)
        self.spec = spec
        # Keras 3 variables wrap tf.Variables: the converter must see the inner ones to freeze them.
        self.model_variables = [v.value for v in model.variables]
        ids_spec = {name: tf.TensorSpec([1, sequence_length], tf.int32, name=name)
                    for name in ID_NAMES}
        self.serve_ids = tf.function(lambda features: lite_forward(self._untracked.model, features),
                                     input_signature=[ids_spec])
        self.tokenizer = None
        if tokenizer is not None:
            from bert_tf.text import BertTokenizer
            self.tokenizer = BertTokenizer(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                                           sequence_length=sequence_length, tflite_compatible=True)
            names = text_input_names(spec)
            self.serving_default = tf.function(
                self._serve_text, input_signature=[tf.TensorSpec([1], tf.string, name=n) for n in names])

    def signatures(self) -> dict:
        out = {"serve_ids": self.serve_ids.get_concrete_function()}
        if self.tokenizer is not None:
            out["serving_default"] = self.serving_default.get_concrete_function()
        return out

    def _serve_text(self, *texts):
        features = self.tokenizer(tuple(texts) if len(texts) == 2 else texts[0])
        outputs = lite_forward(self._untracked.model, features)
        outputs["input_ids"] = features["input_ids"]
        if self.spec.task == CLASSIFICATION:
            logits = outputs["logits"]
            outputs["probabilities"] = tf.nn.softmax(logits, axis=-1)
            outputs["label_ids"] = tf.argmax(logits, axis=-1, output_type=tf.int32)
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


def representative_dataset(tokenizer, texts, sequence_length, with_tokenizer, spec):
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
                names = text_input_names(spec)
                yield "serving_default", {n: tf.constant([s]) for n, s in zip(names, segments)}
    return generate


def convert_tflite(model, out_path, quantize="none", sequence_length=128, tokenizer=None,
                   representative_data=None, labels=None, pair=None) -> str:
    """Converts a bert_tf task model to `out_path` (.tflite); returns the path.

    quantize: "none" (float32), "float16" (weights), "dynamic" (int8 weights, float activations)
    or "int8" (weights and activations, calibrated on `representative_data`: texts (or
    (text, text_pair) tuples) from the task's data, or a ready TFLite representative-dataset
    callable). tokenizer: a BertTokenizer; given, the tokenizer goes inside the model
    (`serving_default` takes text).
    """
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if quantize == "int8" and representative_data is None:
        raise ExportError("int8 quantization needs representative_data (a few hundred examples "
                          "from the task's own data) to calibrate activations")
    sequence_length = int(sequence_length)
    if not 3 <= sequence_length <= model.encoder.config.max_position_embeddings:
        raise ExportError(f"sequence_length must be in [3, "
                          f"{model.encoder.config.max_position_embeddings}], got {sequence_length}")
    from types import SimpleNamespace
    spec = spec_for(model, tokenizer or SimpleNamespace(sequence_length=sequence_length,
                                                        lowercase=True), labels=labels, pair=pair)
    if representative_data is not None and not callable(representative_data):
        if tokenizer is None:
            raise ExportError("representative texts need a tokenizer to become ids")
        representative_data = representative_dataset(tokenizer, representative_data,
                                                     sequence_length, True, spec)
    out_path = os.path.abspath(os.fspath(out_path))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    module = TFLiteModule(model, spec, sequence_length, tokenizer)
    signatures = module.signatures()
    workdir = tempfile.mkdtemp(prefix=".tmp-tflite-", dir=os.path.dirname(out_path))
    try:
        saved = os.path.join(workdir, "saved_model")
        tf.saved_model.save(module, saved, signatures=signatures)
        converter = _converter(saved, list(signatures), quantize, tokenizer is not None,
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
