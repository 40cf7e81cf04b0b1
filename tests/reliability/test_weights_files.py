"""Loaders stay inside what they were given and name the file in every error: damaged
safetensors (header sizes checked against the file before reading), shard indexes (no shard
outside the checkpoint directory, no KeyError), damaged TF checkpoints."""

import json
import os
import struct

import numpy as np
import pytest

from bert_tf.weights import WeightsError
from bert_tf.weights.google import read_tf1_checkpoint
from bert_tf.weights.huggingface import read_hf_tensors
from bert_tf.weights.safetensors_io import read_safetensors, read_sharded_index
from tests.reliability.cases import Case, check, params

A = np.arange(6, dtype=np.float32).reshape(2, 3)
B = np.array([1.5, -2.0], dtype=np.float32)


def safetensors_bytes(header=None, body=None, header_bytes=None, header_len=None):
    """A .safetensors file: 8-byte little-endian header length, JSON header, data. Defaults: two
    valid float32 tensors a [2, 3] and b [2]."""
    if header is None:
        header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]},
                  "__metadata__": {"format": "pt"}}
    if body is None:
        body = A.tobytes() + B.tobytes()
    raw = header_bytes if header_bytes is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + body


def entry(**changes):
    """The default header with tensor a's entry changed (None: remove the key)."""
    info = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    for key, value in changes.items():
        if value is None:
            info.pop(key)
        else:
            info[key] = value
    return {"a": info, "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}


VALID = safetensors_bytes()
BF16 = np.array([1.0, -2.5], np.float32)
SAFETENSORS = [
    Case("valid", "OK", VALID),
    Case("trailing-bytes", "OK", VALID + b"\0" * 7),
    Case("metadata-only", "OK", safetensors_bytes(header={"__metadata__": {}}, body=b"")),
    Case("bf16", "OK", safetensors_bytes(
        header={"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
        body=(BF16.view(np.uint32) >> 16).astype("<u2").tobytes())),
    Case("empty-file", "CLEAR", b"", ("model.safetensors", "too short")),
    Case("five-bytes", "CLEAR", b"\x01\x02\x03\x04\x05", ("model.safetensors", "too short")),
    Case("header-length-past-end", "CLEAR", safetensors_bytes(header_len=10**9),
         ("model.safetensors", "header length")),
    Case("header-length-2pow64", "CLEAR", safetensors_bytes(header_len=2**64 - 1),
         ("model.safetensors", "header length")),
    Case("header-not-json", "CLEAR", safetensors_bytes(header_bytes=b"{not json"),
         ("model.safetensors", "unreadable header")),
    Case("header-not-utf8", "CLEAR", safetensors_bytes(header_bytes=b"\xff\xfe"),
         ("model.safetensors", "unreadable header")),
    Case("header-a-list", "CLEAR", safetensors_bytes(header=[1, 2]),
         ("model.safetensors", "not a JSON object")),
    Case("truncated-data", "CLEAR", VALID[:-10], ("model.safetensors", "truncated", "b")),
    Case("truncated-to-header", "CLEAR", VALID[:-32], ("model.safetensors", "truncated")),
    Case("no-data-offsets", "CLEAR", safetensors_bytes(header=entry(data_offsets=None)),
         ("model.safetensors", "'a'", "data_offsets")),
    Case("no-dtype", "CLEAR", safetensors_bytes(header=entry(dtype=None)),
         ("model.safetensors", "dtype")),
    Case("no-shape", "CLEAR", safetensors_bytes(header=entry(shape=None)),
         ("model.safetensors", "shape")),
    Case("entry-not-object", "CLEAR", safetensors_bytes(header={"a": [0, 24]}),
         ("model.safetensors", "'a'")),
    Case("offsets-reversed", "CLEAR", safetensors_bytes(header=entry(data_offsets=[24, 0])),
         ("model.safetensors", "invalid data_offsets")),
    Case("offsets-negative", "CLEAR", safetensors_bytes(header=entry(data_offsets=[-8, 16])),
         ("model.safetensors", "invalid data_offsets")),
    Case("offsets-floats", "CLEAR", safetensors_bytes(header=entry(data_offsets=[0.0, 24.0])),
         ("model.safetensors", "invalid data_offsets")),
    Case("offsets-three", "CLEAR", safetensors_bytes(header=entry(data_offsets=[0, 12, 24])),
         ("model.safetensors", "invalid data_offsets")),
    Case("offsets-past-end", "CLEAR", safetensors_bytes(header=entry(data_offsets=[0, 4000])),
         ("model.safetensors", "truncated")),
    Case("size-not-shape", "CLEAR", safetensors_bytes(header=entry(data_offsets=[0, 20])),
         ("model.safetensors", "needs 24 bytes")),
    Case("shape-negative", "CLEAR", safetensors_bytes(header=entry(shape=[-2, -3])),
         ("model.safetensors", "invalid shape")),
    Case("shape-not-list", "CLEAR", safetensors_bytes(header=entry(shape="2x3")),
         ("model.safetensors", "invalid shape")),
    Case("dtype-unknown", "CLEAR", safetensors_bytes(header=entry(dtype="F8_E4M3")),
         ("model.safetensors", "unsupported dtype")),
]


@pytest.mark.parametrize("case", params(SAFETENSORS))
def test_safetensors_file(case, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(case.inputs)
    out = check(case, lambda: read_safetensors(str(path)))
    if case.expect == "OK":
        if case.name in ("valid", "trailing-bytes"):
            np.testing.assert_array_equal(out["a"], A)
            np.testing.assert_array_equal(out["b"], B)
        if case.name == "bf16":
            np.testing.assert_array_equal(out["x"], BF16)
    else:
        assert isinstance(out, WeightsError)


@pytest.mark.expect("CLEAR")
def test_hf_directory_with_a_truncated_model_names_the_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(VALID[:-5])
    with pytest.raises(WeightsError, match="model.safetensors: truncated"):
        read_hf_tensors(str(tmp_path))


# ------------------------------------------------------------------ shard indexes
INDEX = "model.safetensors.index.json"
SHARD_A = safetensors_bytes(header={"a": {"dtype": "F32", "shape": [2, 3],
                                          "data_offsets": [0, 24]}}, body=A.tobytes())
SHARD_B = safetensors_bytes(header={"b": {"dtype": "F32", "shape": [2],
                                          "data_offsets": [0, 8]}}, body=B.tobytes())
OUTSIDE = "../elsewhere/model.safetensors"   # relative to the checkpoint dir: exists, readable


def index(weight_map):
    return {"metadata": {"total_size": 32}, "weight_map": weight_map}


SHARDS = [
    Case("valid", "OK", index({"a": "a.safetensors", "b": "b.safetensors"})),
    Case("shard-in-subdirectory", "OK", index({"a": "sub/a.safetensors", "b": "b.safetensors"})),
    Case("dot-slash", "OK", index({"a": "./a.safetensors", "b": "b.safetensors"})),
    # A symlink inside the directory is followed (Hugging Face's cache links snapshots to blobs).
    Case("symlink-inside", "OK", index({"a": "link.safetensors", "b": "b.safetensors"})),
    Case("dotdot-escape", "CLEAR", index({"a": OUTSIDE, "b": "b.safetensors"}),
         (INDEX, "outside")),
    Case("dotdot-dotdot-escape", "CLEAR", index({"a": "../../elsewhere/model.safetensors",
                                                 "b": "b.safetensors"}), (INDEX, "outside")),
    Case("sub-then-dotdot-escape", "CLEAR", index({"a": "sub/../../elsewhere/model.safetensors",
                                                   "b": "b.safetensors"}), (INDEX, "outside")),
    Case("absolute-path", "CLEAR", index({"a": "{outside}", "b": "b.safetensors"}),
         (INDEX, "outside")),
    Case("backslash-escape", "CLEAR", index({"a": "..\\elsewhere\\model.safetensors",
                                             "b": "b.safetensors"}), (INDEX, "outside")),
    Case("shard-a-number", "CLEAR", index({"a": 3, "b": "b.safetensors"}),
         (INDEX, "shard file names")),
    Case("shard-empty-name", "CLEAR", index({"a": "", "b": "b.safetensors"}),
         (INDEX, "shard file names")),
    Case("shard-missing", "CLEAR", index({"a": "gone.safetensors", "b": "b.safetensors"}),
         (INDEX, "gone.safetensors", "does not exist")),
    Case("tensor-not-in-shard", "CLEAR", index({"a": "a.safetensors", "b": "a.safetensors"}),
         (INDEX, "lacks", "'b'")),
    Case("shard-truncated", "CLEAR", index({"a": "short.safetensors", "b": "b.safetensors"}),
         ("short.safetensors", "truncated")),
    Case("no-weight-map", "CLEAR", {"metadata": {}}, (INDEX, "weight_map")),
    Case("weight-map-a-list", "CLEAR", {"weight_map": ["a.safetensors"]}, (INDEX, "weight_map")),
    Case("weight-map-empty", "CLEAR", index({}), (INDEX, "weight_map")),
    Case("index-a-list", "CLEAR", [1, 2], (INDEX, "weight_map")),
    Case("index-not-json", "CLEAR", "{weight_map:", (INDEX, "not valid JSON")),
]


@pytest.mark.parametrize("case", params(SHARDS))
def test_shard_index(case, tmp_path):
    checkpoint, elsewhere = tmp_path / "checkpoint", tmp_path / "elsewhere"
    for folder in (checkpoint / "sub", elsewhere):
        folder.mkdir(parents=True)
    for name, data in (("a.safetensors", SHARD_A), ("sub/a.safetensors", SHARD_A),
                       ("b.safetensors", SHARD_B), ("short.safetensors", SHARD_A[:-4])):
        (checkpoint / name).write_bytes(data)
    os.symlink(checkpoint / "a.safetensors", checkpoint / "link.safetensors")
    # The file an escaping index points at is a valid shard: only the name check stops it.
    (elsewhere / "model.safetensors").write_bytes(SHARD_A)
    text = (case.inputs if isinstance(case.inputs, str) else
            json.dumps(case.inputs).replace("{outside}", str(elsewhere / "model.safetensors")))
    (checkpoint / INDEX).write_text(text)
    out = check(case, lambda: read_sharded_index(str(checkpoint), INDEX))
    if case.expect == "OK":
        np.testing.assert_array_equal(out["a"], A)
        np.testing.assert_array_equal(out["b"], B)
    else:
        assert isinstance(out, WeightsError)


# ------------------------------------------------------------------ TF checkpoints
def damage(kind, prefix):
    data = prefix + ".data-00000-of-00001"
    if kind == "truncated-data":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    elif kind == "empty-data":
        open(data, "wb").close()
    elif kind == "missing-data":
        os.remove(data)
    elif kind == "garbage-index":
        with open(prefix + ".index", "wb") as f:
            f.write(b"not a checkpoint index" * 4)


TF_CHECKPOINTS = [
    Case("valid", "OK", None),
    Case("truncated-data", "CLEAR", "truncated-data", ("bert_model.ckpt",)),
    Case("empty-data", "CLEAR", "empty-data", ("bert_model.ckpt",)),
    Case("missing-data", "CLEAR", "missing-data", ("bert_model.ckpt",)),
    Case("garbage-index", "CLEAR", "garbage-index", ("bert_model.ckpt",)),
]


@pytest.mark.parametrize("case", params(TF_CHECKPOINTS))
def test_tf1_checkpoint(case, tmp_path):
    import tensorflow as tf
    prefix = str(tmp_path / "bert_model.ckpt")
    # A name-based (TF1) bundle, as google-research/bert writes: no object graph entry.
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["bert/kernel", "bert/bias"],
                      shape_and_slices=["", ""],
                      tensors=[tf.constant(np.arange(4096, dtype=np.float32)), tf.constant(B)])
    damage(case.inputs, prefix)
    out = check(case, lambda: read_tf1_checkpoint(prefix))
    if case.expect == "OK":
        np.testing.assert_array_equal(out["bert/bias"], B)
    else:
        assert isinstance(out, WeightsError)


# ------------------------------------------------------------------ `checkpoint` state files
STATE_FILES = [
    Case(f"{reader}-{name}", expect, (reader, target), words)
    for reader in ("google", "model_garden")
    for name, expect, target, words in (
        ("inside", "OK", "model.ckpt-5", ()),
        ("dotdot-outside", "CLEAR", "../elsewhere/model.ckpt-9", ("checkpoint", "outside")),
        ("absolute-outside", "CLEAR", "{elsewhere}/model.ckpt-9", ("checkpoint", "outside")),
        ("sub-dotdot-outside", "CLEAR", "sub/../../elsewhere/model.ckpt-9", ("outside",)),
    )]


@pytest.mark.parametrize("case", params(STATE_FILES))
def test_checkpoint_state_file_stays_inside(case, tmp_path):
    import tensorflow as tf
    from bert_tf.weights import google, model_garden
    reader, target = case.inputs
    checkpoint, elsewhere = tmp_path / "checkpoint_dir", tmp_path / "elsewhere"
    for folder, prefix in ((checkpoint, "model.ckpt-5"), (elsewhere, "model.ckpt-9")):
        folder.mkdir()
        tf.raw_ops.SaveV2(prefix=str(folder / prefix), tensor_names=["x"], shape_and_slices=[""],
                          tensors=[tf.constant(B)])
    # Two checkpoints inside (no single *.index to fall back on): the state file decides.
    tf.raw_ops.SaveV2(prefix=str(checkpoint / "model.ckpt-1"), tensor_names=["x"],
                      shape_and_slices=[""], tensors=[tf.constant(B)])
    (checkpoint / "sub").mkdir()   # so that sub/../.. resolves on disk
    target = target.replace("{elsewhere}", str(elsewhere))
    (checkpoint / "checkpoint").write_text(f'model_checkpoint_path: "{target}"\n')
    find = (google if reader == "google" else model_garden).find_checkpoint_prefix
    out = check(case, lambda: find(str(checkpoint)))
    if case.expect == "OK":
        assert out == str(checkpoint / "model.ckpt-5")
