"""The exported signatures enforce their contracts in the graph (serve_ids, serve_examples,
serving_default; the default packed export and an XLA one; a fresh process with only tensorflow +
tensorflow_text; the TFLite serve_ids)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig, BertEncoder
from bert_tf.export import export_saved_model
from bert_tf.models import BertClassifier
from bert_tf.text import BertTokenizer
from tests.reliability.cases import Case, check, params

VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz")
         + ["good", "bad", "film", "the", "##s"])
V = len(VOCAB)
MAX_POSITIONS = 32
INT32_MAX, INT32_MIN = 2**31 - 1, -2**31
invalid = tf.errors.InvalidArgumentError


def tiny_model(max_positions=MAX_POSITIONS):
    import keras
    keras.utils.set_random_seed(3)
    config = BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=max_positions)
    return BertClassifier(BertEncoder(config), num_classes=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    tokenizer = BertTokenizer(VOCAB, sequence_length=16)
    root = tmp_path_factory.mktemp("serving")
    path = export_saved_model(model, root / "tiny", tokenizer=tokenizer, labels=["neg", "pos"])
    return {"model": model, "path": path, "loaded": tf.saved_model.load(path)}


@pytest.fixture(scope="module")
def exported_xla(exported, tmp_path_factory):
    path = export_saved_model(exported["model"], tmp_path_factory.mktemp("xla") / "tiny",
                              jit_compile=True)
    return {"model": exported["model"], "loaded": tf.saved_model.load(path)}


# ------------------------------------------------------------------ serve_ids
def ids(batch=2, length=5, word=7, types=0, mask=1, **set_at):
    """int32 [batch, length] inputs; set_at: name=(row, col, value) overrides one element."""
    out = {"input_ids": np.full([batch, length], word, np.int64),
           "token_type_ids": np.full([batch, length], types, np.int64),
           "attention_mask": np.full([batch, length], mask, np.int64)}
    for name, (row, col, value) in set_at.items():
        out[name][row, col] = value
    return out


def shaped(**shapes):
    out = ids()
    for name, shape in shapes.items():
        out[name] = np.ones(shape, np.int64)
    return out


SERVE_IDS = [
    Case("valid", "OK", ids()),
    Case("type-id-1", "OK", ids(types=1)),
    Case("all-masked-rows", "OK", ids(mask=0)),
    Case("mask-holes", "OK", ids(attention_mask=(0, 2, 0))),
    Case("empty-batch", "OK", ids(batch=0)),
    Case("empty-batch-zero-length", "OK", ids(batch=0, length=0)),
    Case("full-positions", "OK", ids(length=MAX_POSITIONS)),
    Case("id-minus-7", "CLEAR", ids(input_ids=(0, 1, -7)), ("input_ids", f"[0, {V})")),
    Case("id-minus-1", "CLEAR", ids(input_ids=(1, 4, -1)), ("input_ids", f"[0, {V})")),
    Case("id-vocab-size", "CLEAR", ids(input_ids=(0, 0, V)), ("input_ids", f"[0, {V})")),
    Case("id-vocab-plus-1000", "CLEAR", ids(input_ids=(1, 2, V + 1000)), ("input_ids",)),
    Case("id-int32-max", "CLEAR", ids(input_ids=(0, 3, INT32_MAX)), ("input_ids",)),
    Case("id-int32-min", "CLEAR", ids(input_ids=(0, 3, INT32_MIN)), ("input_ids",)),
    Case("id-bad-under-mask-0", "CLEAR", ids(input_ids=(1, 4, -3), attention_mask=(1, 4, 0)),
         ("input_ids",)),
    Case("type-id-2", "CLEAR", ids(token_type_ids=(0, 1, 2)), ("token_type_ids", "[0, 2)")),
    Case("type-id-minus-1", "CLEAR", ids(token_type_ids=(1, 0, -1)), ("token_type_ids",)),
    Case("type-id-int32-max", "CLEAR", ids(token_type_ids=(1, 0, INT32_MAX)),
         ("token_type_ids",)),
    Case("mask-2", "CLEAR", ids(attention_mask=(0, 0, 2)), ("attention_mask", "0 or 1")),
    Case("mask-minus-1", "CLEAR", ids(attention_mask=(1, 1, -1)), ("attention_mask",)),
    Case("zero-length", "CLEAR", ids(length=0), ("input_ids", "at least one position")),
    Case("types-shape", "CLEAR", shaped(token_type_ids=[2, 4]),
         ("token_type_ids", "shape of input_ids")),
    Case("mask-shape", "CLEAR", shaped(attention_mask=[3, 5]),
         ("attention_mask", "shape of input_ids")),
    Case("too-long", "CLEAR", ids(length=MAX_POSITIONS + 1), ("positions",)),
]


def call_ids(signature, inputs):
    return signature(**{k: tf.constant(v, tf.int32) for k, v in inputs.items()})


def reference_logits(model, inputs):
    return np.asarray(model({k: tf.constant(v, tf.int32) for k, v in inputs.items()},
                            training=False)["logits"])


@pytest.mark.parametrize("case", params(SERVE_IDS))
def test_serve_ids(exported, case):
    signature = exported["loaded"].signatures["serve_ids"]
    out = check(case, lambda: call_ids(signature, case.inputs))
    if case.expect == "OK":
        batch = case.inputs["input_ids"].shape[0]
        assert out["logits"].shape == (batch, 2)
        if batch:
            np.testing.assert_allclose(out["logits"].numpy(),
                                       reference_logits(exported["model"], case.inputs),
                                       atol=1e-5)


@pytest.mark.parametrize("case", params([c for c in SERVE_IDS if c.name in (
    "valid", "empty-batch", "empty-batch-zero-length", "id-minus-7", "id-vocab-size",
    "type-id-2", "mask-2", "zero-length", "too-long")]))
def test_serve_ids_with_xla(exported_xla, case):
    out = check(case, lambda: call_ids(exported_xla["loaded"].signatures["serve_ids"],
                                       case.inputs))
    if case.expect == "OK":
        assert out["logits"].shape == (case.inputs["input_ids"].shape[0], 2)


# ------------------------------------------------------------------ serve_examples
def example(**features):
    """One serialized tf.Example; values: a list of ints (int64_list), floats or bytes."""
    def feature(values):
        if values and isinstance(values[0], float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        if values and isinstance(values[0], bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(
        feature={k: feature(v) for k, v in features.items()})).SerializeToString()


def full(ids_, types=None, mask=None):
    return example(input_ids=ids_, token_type_ids=types if types is not None else [0] * len(ids_),
                   attention_mask=mask if mask is not None else [1] * len(ids_))


GOOD = [2, 31, 33, 3]
SERVE_EXAMPLES = [
    Case("valid", "OK", [full(GOOD), full([2, 32, 3])]),
    Case("rows-of-different-lengths", "OK", [full([2, 5, 6, 7, 8, 3]), full([2, 3])]),
    Case("token-types-absent", "OK", [example(input_ids=GOOD, attention_mask=[1] * 4)]),
    Case("unknown-extra-feature", "OK", [example(input_ids=GOOD, attention_mask=[1] * 4,
                                                 label=[1])]),
    Case("empty-batch", "OK", []),
    Case("id-2pow32-plus-2000", "CLEAR", [full([2, 2**32 + 20, 3])], ("input_ids", f"[0, {V})")),
    Case("id-2pow32", "CLEAR", [full([2, 2**32, 3])], ("input_ids",)),
    Case("id-minus-2pow32-plus-5", "CLEAR", [full([2, -2**32 + 5, 3])], ("input_ids",)),
    Case("id-int64-max", "CLEAR", [full([2, 2**63 - 1, 3])], ("input_ids",)),
    Case("id-minus-7", "CLEAR", [full([2, -7, 3])], ("input_ids",)),
    Case("id-vocab-size", "CLEAR", [full([2, V, 3])], ("input_ids",)),
    Case("type-2pow32", "CLEAR", [full(GOOD, types=[0, 2**32, 0, 0])], ("token_type_ids",)),
    Case("type-2", "CLEAR", [full(GOOD, types=[0, 0, 2, 0])], ("token_type_ids", "[0, 2)")),
    Case("mask-2pow32-plus-1", "CLEAR", [full(GOOD, mask=[1, 2**32 + 1, 1, 1])],
         ("attention_mask",)),
    Case("mask-absent", "CLEAR", [example(input_ids=GOOD, token_type_ids=[0] * 4)],
         ("attention_mask", "missing")),
    Case("mask-absent-in-one-of-two", "CLEAR",
         [full(GOOD), example(input_ids=GOOD, token_type_ids=[0] * 4)], ("attention_mask",)),
    Case("ids-absent", "CLEAR", [example(attention_mask=[1, 1])], ("input_ids", "missing")),
    Case("ids-empty", "CLEAR", [full([])], ("input_ids", "empty")),
    Case("mask-shorter", "CLEAR", [full(GOOD, mask=[1, 1])], ("attention_mask", "length")),
    Case("types-longer", "CLEAR", [full(GOOD, types=[0] * 6)], ("token_type_ids", "length")),
    Case("ids-as-floats", "CLEAR", [example(input_ids=[2.0, 3.0], attention_mask=[1, 1])],
         ("input_ids",)),
    Case("mask-as-bytes", "CLEAR", [example(input_ids=[2, 3], attention_mask=[b"1", b"1"])],
         ("attention_mask",)),
    Case("too-long", "CLEAR", [full([5] * (MAX_POSITIONS + 1))], ("positions",)),
    Case("not-an-example-ascii", "CLEAR", [b"this is not a tf.Example"], ("parse",)),
    # TensorFlow's parse error echoes the bytes; eager Python then fails to decode a non-UTF-8
    # echo (UnicodeDecodeError). TF Serving answers INVALID_ARGUMENT. Documented in the README.
    Case("not-an-example-binary", "RAISES", [b"\xff\xfe\x00garbage"],
         errors=(invalid, UnicodeDecodeError)),
]


def as_ids(serialized):
    """The serve_ids inputs a valid batch of `full(...)` examples stands for (zero padding)."""
    rows = [tf.train.Example.FromString(s).features.feature for s in serialized]
    width = max(len(r["input_ids"].int64_list.value) for r in rows)
    out = {}
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        out[name] = np.zeros([len(rows), width], np.int64)
        for i, r in enumerate(rows):
            values = r[name].int64_list.value if name in r else []
            out[name][i, :len(values)] = values
    return out


@pytest.mark.parametrize("case", params(SERVE_EXAMPLES))
def test_serve_examples(exported, case):
    signature = exported["loaded"].signatures["serve_examples"]
    out = check(case, lambda: signature(examples=tf.constant(case.inputs, tf.string)))
    if case.expect == "OK":
        assert out["logits"].shape == (len(case.inputs), 2)
        if case.inputs:
            np.testing.assert_allclose(out["logits"].numpy(),
                                       reference_logits(exported["model"], as_ids(case.inputs)),
                                       atol=1e-5)


@pytest.mark.parametrize("case", params([c for c in SERVE_EXAMPLES if c.name in (
    "valid", "empty-batch", "id-2pow32-plus-2000", "mask-absent", "types-longer")]))
def test_serve_examples_with_xla(exported_xla, case):
    signature = exported_xla["loaded"].signatures["serve_examples"]
    check(case, lambda: signature(examples=tf.constant(case.inputs, tf.string)))


# ------------------------------------------------------------------ serving_default (text)
TEXTS = [
    # (name, class, texts, words, the texts whose answers they must equal)
    Case("valid", "OK", ([b"a good film"], [b"a good film"])),
    # The documented replacement: invalid UTF-8 becomes U+FFFD, which the tokenizer drops.
    Case("invalid-utf8-dropped", "OK", ([b"a good \xff\xfe film"], [b"a good film"])),
    Case("lone-continuation-byte", "OK", ([b"good\x80 film"], [b"good film"])),
    Case("only-invalid-bytes", "OK", ([b"\xff\xfe\xc3"], [b""])),
    Case("truncated-utf8-sequence", "OK", ([b"film \xe2\x82"], [b"film"])),
    Case("nul-bytes", "OK", ([b"a\x00good film"], None)),
    Case("empty-string", "OK", ([b""], None)),
    Case("empty-batch", "OK", ([], None)),
    Case("longer-than-sequence", "OK", ([b"good " * 200], None)),
    Case("rank-2", "CLEAR", ([[b"a", b"b"]], None), ("text", "1-D batch")),
]


@pytest.mark.parametrize("case", params(TEXTS))
def test_serving_default(exported, case):
    signature = exported["loaded"].signatures["serving_default"]
    texts, same_as = case.inputs
    out = check(case, lambda: signature(text=tf.constant(texts, tf.string)))
    if case.expect == "OK":
        assert out["probabilities"].shape == (len(texts), 2)
        assert np.all(np.isfinite(out["probabilities"].numpy()))
        if same_as is not None:
            expected = signature(text=tf.constant(same_as, tf.string))
            np.testing.assert_allclose(out["logits"].numpy(), expected["logits"].numpy(),
                                       atol=1e-6)


# ------------------------------------------------------------------ fresh process
FRESH = [c for c in SERVE_IDS if c.name in ("id-minus-7", "type-id-2", "zero-length")] + [
    c for c in SERVE_EXAMPLES if c.name in ("id-2pow32-plus-2000", "mask-absent")]


@pytest.mark.slow
@pytest.mark.expect("CLEAR")
def test_checks_survive_export_in_a_fresh_process(exported, tmp_path):
    """The checks are graph ops: a process with only tensorflow + tensorflow_text (no bert_tf,
    no Keras) gets the same errors."""
    calls = [("serve_ids", {k: v.tolist() for k, v in c.inputs.items()}, c.words)
             for c in FRESH if c in SERVE_IDS]
    calls += [("serve_examples", {"examples": [s.hex() for s in c.inputs]}, c.words)
              for c in FRESH if c in SERVE_EXAMPLES]
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["bert_tf"] = None
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        loaded = tf.saved_model.load({exported['path']!r})
        results = []
        for signature, inputs, words in json.loads({json.dumps(calls)!r}):
            if signature == "serve_examples":
                inputs = {{"examples": tf.constant([bytes.fromhex(h) for h in inputs["examples"]])}}
            else:
                inputs = {{k: tf.constant(v, tf.int32) for k, v in inputs.items()}}
            try:
                loaded.signatures[signature](**inputs)
                results.append("no error")
            except tf.errors.InvalidArgumentError as e:
                results.append(all(w in e.message for w in words) or e.message[:300])
        assert not [m for m in sys.modules if m.startswith("bert_tf") and sys.modules[m]]
        print(json.dumps(results))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [True] * len(calls)


# ------------------------------------------------------------------ TFLite serve_ids
@pytest.fixture(scope="module")
def lite(exported, tmp_path_factory):
    from bert_tf.export.tflite import convert_tflite, interpreter
    path = convert_tflite(exported["model"], tmp_path_factory.mktemp("lite") / "m.tflite",
                          sequence_length=8)
    return interpreter(path).get_signature_runner("serve_ids")


LITE = [
    Case("valid", "OK", ids(batch=1, length=8)),
    Case("mask-holes", "OK", ids(batch=1, length=8, attention_mask=(0, 5, 0))),
    # TFLite has no assert op with a message: the refused index is GATHER's own error.
    Case("id-minus-7", "RAISES", ids(batch=1, length=8, input_ids=(0, 1, -7)),
         errors=(RuntimeError,)),
    Case("id-minus-1", "RAISES", ids(batch=1, length=8, input_ids=(0, 7, -1)),
         errors=(RuntimeError,)),
    Case("id-vocab-size", "RAISES", ids(batch=1, length=8, input_ids=(0, 2, V)),
         errors=(RuntimeError,)),
    Case("type-id-2", "RAISES", ids(batch=1, length=8, token_type_ids=(0, 2, 2)),
         errors=(RuntimeError,)),
    Case("type-id-minus-1", "RAISES", ids(batch=1, length=8, token_type_ids=(0, 2, -1)),
         errors=(RuntimeError,)),
]


@pytest.mark.parametrize("case", params(LITE))
def test_tflite_serve_ids_never_wraps_an_id(exported, lite, case):
    inputs = {k: v.astype(np.int32) for k, v in case.inputs.items()}
    out = check(case, lambda: lite(**inputs))
    if case.expect == "OK":
        np.testing.assert_allclose(out["logits"], reference_logits(exported["model"], inputs),
                                   atol=1e-4)
    else:
        assert "out of bounds" in str(out)
