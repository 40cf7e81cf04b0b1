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

Length signatures (`lengths`, e.g. 16/32/64 for a max length of 128): BERT's cost grows with the
positions it runs, and a fixed [1, N] input makes a 12-piece sentence pay for N. The same file
then also holds, for each shorter length L,
    serve_ids_L         ids [1, L] -> raw model outputs
    serving_default_L   (with the tokenizer) text [1] -> answers, packed to L positions
    measure             (with the tokenizer) text [1] -> length int32 [1]: the positions the
                        text needs (its [CLS]/[SEP]-packed pieces, at most N)
all over the same weights (one copy: the converter shares their buffers). A caller measures, then
runs the shortest signature whose L fits (`TFLiteTaskRunner` does): the answer is the full-length
one (padding is masked), computed on L positions. Every L-signature is planned once; nothing is
resized at run time.

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
import tempfile
import types

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf.atomic import clean_stale_temps, temp_prefix, write_bytes_atomic
from bert_tf.export.errors import ExportError
from bert_tf.export.serving_module import ID_NAMES

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
TFLITE_MASK_VALUE = -100.0
# int8: the ops that stay float. BERT's residual stream (the adds around each sublayer and the
# LayerNorm computed from it: mean, squared difference, rsqrt, the scale's mul, the shift's sub)
# carries a few outlier dimensions; one int8 scale for the whole tensor rounds every other
# dimension away (Bondarenko et al. 2021). Keeping these six ops float recovers the accuracy
# all-int8 loses. The attention products (BATCH_MATMUL: both operands are activations) and the
# softmax between them stay float for speed: on CPU their int8 kernels are slower than their
# float ones, by enough to make an all-int8 model slower than float32 (how much: docs/results.md,
# "int8 that keeps accuracy"). Every op with weights
# (FULLY_CONNECTED, the embedding GATHER) stays int8.
INT8_FLOAT_OPS = ("ADD", "SUB", "MUL", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "BATCH_MATMUL",
                  "SOFTMAX")


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


def length_signature(name: str, length: int, full_length: int) -> str:
    """The signature name of `name` ("serve_ids" / "serving_default") at `length` positions: the
    plain name at the model's full length, `name_<length>` for the shorter ones."""
    return name if length == full_length else f"{name}_{length}"


def check_lengths(lengths, sequence_length: int) -> tuple:
    """The sorted signature lengths: the given ones below `sequence_length`, plus it (the longest
    always equals the model's length, so a long text is cut exactly as `bert-tf predict` cuts it)."""
    values = set()
    for length in lengths or ():
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise ExportError(f"lengths must be integers, got {length!r}")
        if not 3 <= int(length) <= sequence_length:
            raise ExportError(f"length {length} is outside [3, {sequence_length}] (the model's "
                              f"sequence length {sequence_length} is the longest signature)")
        values.add(int(length))
    return tuple(sorted(values | {int(sequence_length)}))


class TFLiteModule(tf.Module):
    def __init__(self, model, sequence_length, task=None, lengths=()):
        super().__init__(name="bert_tflite")
        # Held outside the object graph: tracking the Keras model would also save its optimizer
        # (twice the weights again); the functions only need the variables tracked below.
        self._untracked = types.SimpleNamespace(model=model, task=task)
        # Keras 3 variables wrap tf.Variables: the converter must see the inner ones to freeze them.
        self.model_variables = [v.value for v in model.variables]
        self.sequence_length = int(sequence_length)
        self.lengths = check_lengths(lengths, self.sequence_length)
        config = model.encoder.config

        def serve_ids(features):
            return lite_forward(self._untracked.model, out_of_table(
                features, config.vocab_size, config.type_vocab_size))
        self._untracked.serve_ids = serve_ids

        self._functions = {}
        for length in self.lengths:
            ids_spec = {name: tf.TensorSpec([1, length], tf.int32, name=name) for name in ID_NAMES}
            self._functions[length_signature("serve_ids", length, self.sequence_length)] = \
                tf.function(serve_ids, input_signature=[ids_spec])
        self.serve_ids = self._functions["serve_ids"]
        self.tokenizer = None
        if task is not None:
            tasks = {length: lite_task(task, length) for length in self.lengths}
            self._untracked.task = tasks[self.sequence_length]
            self.tokenizer = self._untracked.task.tokenizer
            specs = [tf.TensorSpec([1], tf.string, name=n) for n in task.serving_input_names]
            for length, lite in tasks.items():
                self._functions[length_signature("serving_default", length,
                                                 self.sequence_length)] = tf.function(
                    self._text_function(lite), input_signature=specs)
            if len(self.lengths) > 1:
                self._functions["measure"] = tf.function(self._measure, input_signature=specs)
            self.serving_default = self._functions["serving_default"]

    def signatures(self) -> dict:
        return {name: function.get_concrete_function()
                for name, function in self._functions.items()}

    def _text_function(self, task):
        def serve_text(*texts):
            return self._serve_text(task, *texts)
        return serve_text

    def _measure(self, *texts):
        """The positions the input needs: its packed length at the full sequence length."""
        task = self._untracked.task
        features, _ = task.serving_features(dict(zip(task.serving_input_names, texts)))
        return {"length": tf.reduce_sum(tf.cast(features["attention_mask"], tf.int32), axis=1)}

    def _serve_text(self, task, *texts):
        texts = dict(zip(task.serving_input_names, texts))
        features, state = task.serving_features(texts)
        # The encoder runs on serve_ids' own graph: static [1, length] ids (one text a call) and
        # the same range guard. Fed the tokenizer's [?, length] ids instead, the converter folds
        # the LayerNorm scales into the next kernels in one signature and not in the other, and
        # the file then holds two versions of those kernels.
        length = task.tokenizer.sequence_length
        ids = {name: tf.reshape(features[name], [1, length]) for name in ID_NAMES}
        outputs = task.decode(self._untracked.serve_ids(ids), state, texts)
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
        # Calibrate only; `_quantize_calibrated` quantizes with INT8_FLOAT_OPS left float (what
        # tf.lite.experimental.QuantizationDebugger does, without its instrumented interpreter,
        # which cannot load the tokenizer's custom ops).
        converter.experimental_mlir_quantizer = True
        converter._experimental_calibrate_only = True
    return converter


def _quantize_calibrated(calibrated: bytes) -> bytes:
    """A calibrated float model → int8 (per-channel weights, calibrated activations) except
    INT8_FLOAT_OPS, which keep float kernels (quantize/dequantize around them). Length
    signatures keep one copy of the weights (`share_table_ranges`, then identical read-only
    buffers merged)."""
    from tensorflow.lite.python import convert
    quantized = convert.mlir_quantize(share_table_ranges(calibrated), disable_per_channel=False,
                                      fully_quantize=False, denylisted_ops=list(INT8_FLOAT_OPS))
    return convert.deduplicate_readonly_buffers(quantized)


def share_table_ranges(calibrated: bytes) -> bytes:
    """Gives every GATHER that reads the same constant table (the embedding tables, shared by
    all length signatures) the union of their calibrated output ranges.

    An int8 GATHER has one scale for its table and its output, so the quantizer takes the
    table's scale from the output's calibrated range, which differs a little per signature
    (each length sees the calibration texts packed to its own length). Each signature then
    got its own int8 copy of the table, equal to the others up to rounding (the word table is
    most of a BERT file; sizes: docs/results.md). With one range they quantize to identical
    bytes, which `deduplicate_readonly_buffers` stores once."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python.schema_util import get_builtin_code_from_operator_code
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    ranges = {}                        # table buffer index -> calibrated output quantizations
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            if code != schema.BuiltinOperator.GATHER:
                continue
            table = subgraph.tensors[op.inputs[0]]
            data = model.buffers[table.buffer].data if table.buffer > 0 else None
            out = subgraph.tensors[op.outputs[0]].quantization
            if data is None or len(data) == 0 or out is None or out.min is None \
                    or out.max is None:
                continue                                  # not a constant table, or no range
            ranges.setdefault(table.buffer, []).append(out)
    shared = [group for group in ranges.values() if len(group) > 1]
    if not shared:
        return calibrated
    for group in shared:
        low = min(float(np.min(q.min)) for q in group)
        high = max(float(np.max(q.max)) for q in group)
        for q in group:
            q.min, q.max = [low], [high]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def representative_dataset(tokenizer, texts, sequence_length, with_tokenizer, task=None,
                           lengths=()):
    """A calibration generator over real task texts, one example per step, per signature (every
    length signature sees every text, packed to its length)."""
    from bert_tf.text import BertTokenizer
    lengths = check_lengths(lengths, sequence_length)
    exact = {length: BertTokenizer(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                                   sequence_length=length) for length in lengths}
    texts = list(texts)

    def generate():
        for text in texts:
            segments = text if isinstance(text, tuple) else (text,)
            for length in lengths:
                features = exact[length](tuple(tf.constant([s]) for s in segments)
                                         if len(segments) == 2 else tf.constant([segments[0]]))
                yield (length_signature("serve_ids", length, sequence_length),
                       {k: np.asarray(features[k], np.int32) for k in ID_NAMES})
            if with_tokenizer:
                names = task.serving_input_names
                inputs = {n: tf.constant([s]) for n, s in zip(names, segments)}
                for length in lengths:
                    yield length_signature("serving_default", length, sequence_length), inputs
                if len(lengths) > 1:
                    yield "measure", inputs
    return generate


def convert_tflite(model, out_path, quantize="none", sequence_length=None, tokenizer=None,
                   representative_data=None, labels=None, pair=None, task=None,
                   with_tokenizer=None, lengths=()) -> str:
    """Converts a bert_tf task model to `out_path` (.tflite); returns the path.

    model: a Keras task model, or a fine-tuned model directory / `FinetunedModel` (its task,
    tokenizer and max_length are then used). quantize: "none" (float32), "float16" (weights),
    "dynamic" (int8 weights, float activations) or "int8" (weights and activations, calibrated on
    `representative_data`: texts (or (text, text_pair) tuples) from the task's data, or a ready
    TFLite representative-dataset callable). tokenizer/labels/pair: the task of a bare Keras model.
    with_tokenizer: put the tokenizer and the task's decoding inside (`serving_default` takes
    text); default: whenever a tokenizer is known and the task's serving path fits TFLite.
    lengths: shorter sequence lengths to add as signatures of their own (see the module
    docstring); the file's runner picks the shortest that fits each input.
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
                                                     sequence_length, with_tokenizer, task,
                                                     lengths)
    out_path = fileio.abspath(os.fspath(out_path))
    fileio.makedirs(os.path.dirname(out_path), exist_ok=True)
    module = TFLiteModule(model, sequence_length, task if with_tokenizer else None, lengths)
    signatures = module.signatures()
    # The converter works on a local SavedModel: its scratch sits next to the output when that is
    # local (so a killed run's leftovers are found and removed there), in /tmp when it is remote.
    remote = fileio.is_remote(out_path)
    if not remote:
        clean_stale_temps(os.path.dirname(out_path))
    workdir = tempfile.mkdtemp(prefix=temp_prefix("tflite"),
                               dir=None if remote else os.path.dirname(out_path))
    try:
        saved = os.path.join(workdir, "saved_model")
        tf.saved_model.save(module, saved, signatures=signatures)
        converter = _converter(saved, list(signatures), quantize, with_tokenizer,
                               representative_data)
        try:
            flatbuffer = converter.convert()
            if quantize == "int8":
                flatbuffer = _quantize_calibrated(flatbuffer)
        except Exception as e:  # the converter's errors are long MLIR dumps: keep the first line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"TFLite conversion ({quantize}) failed: {first}") from e
        write_bytes_atomic(out_path, flatbuffer)
    finally:
        fileio.rmtree(workdir, ignore_errors=True)
    return out_path


def interpreter(path: str):
    """An ai-edge-litert interpreter for `path`, with tensorflow-text's custom ops registered."""
    import tensorflow_text as tf_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    if not fileio.isfile(path):
        raise FileNotFoundError(f"{path} does not exist")
    registerers = tf_text.tflite_registrar.SELECT_TFTEXT_OPS
    if fileio.is_remote(path):     # the interpreter maps local files only: hand it the bytes
        with fileio.open(path, "rb") as f:
            return InterpreterWithCustomOps(model_content=f.read(),
                                            custom_op_registerers=registerers)
    return InterpreterWithCustomOps(model_path=path, custom_op_registerers=registerers)
