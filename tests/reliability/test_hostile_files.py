"""Hostile files (issue 17, item 7): pickles where weights or a model are expected, a Keras Lambda
layer, zip members named `../`, a shard index that points outside its directory. Each is given
to the loaders that take files from users (`bert-tf predict`/`export`/`convert`/`finetune --init`):
the answer is one clear error naming the file (CLEAR), or for a model that is sound apart from
stray archive members, a normal answer (OK); in every case no code of the file ran (the payload
would create a marker file) and nothing outside the command's output changed (a sentinel
directory and the hostile input itself keep their listing and mtimes; no escaped member appears).
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import pytest

import bert_tf.cli
from tests.harness import write_tiny_classification, write_tiny_init
from tests.reliability.cases import require_words
from tests.reliability.outcomes import SilentWrong, Unsafe


class Payload:
    """Unpickling it creates `marker` (the proof that code ran)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled(marker) -> bytes:
    return pickle.dumps({"weight": Payload(marker)})


def snapshot(folder) -> dict:
    """{relative path: (size, mtime_ns)} of everything under `folder`, directories included."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            stat = os.lstat(path)
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    init = write_tiny_init(root / "init")
    train = write_tiny_classification(root / "train.csv")
    model = str(root / "model")
    assert bert_tf.cli.main(["finetune", "classify", "--init", init, "--train", train, "--out",
                             model, "--max-length", "16", "--batch-size", "8", "--epochs", "1",
                             "--strategy", "one_device", "--no-progress"]) == 0
    return {"root": root, "init": init, "train": train, "model": model}


# ---------------------------------------------------------------------- the hostile inputs
# Each builder makes a hostile copy at `target` (a model dir or a checkpoint dir) whose payload
# would create `marker`, and returns the path to hand to the command.
def model_pickle(world, target, marker):
    shutil.copytree(world["model"], target)
    with open(os.path.join(target, "model.keras"), "wb") as f:
        f.write(pickled(marker))
    return target


def model_lambda(world, target, marker):
    """model.keras is a Keras model with a Lambda layer whose function writes the marker."""
    import keras
    shutil.copytree(world["model"], target)

    def payload(x, marker=marker):
        open(marker, "w").close()
        return x

    inputs = keras.Input((4,))
    lambda_model = keras.Model(inputs, keras.layers.Lambda(payload)(inputs))
    path = os.path.join(target, "model.keras")
    os.remove(path)
    lambda_model.save(path)
    os.remove(marker)     # building it ran the function once, here, on purpose
    return target


def model_zip_slip(world, target, marker):
    """The real model.keras plus members named ../escape... and /abs/escape...."""
    shutil.copytree(world["model"], target)
    path = os.path.join(target, "model.keras")
    with zipfile.ZipFile(path, "a") as archive:
        for name in ("../escape-1.txt", "../../escape-2.txt", "assets/../../escape-3.txt",
                     "/tmp/escape-4.txt"):
            archive.writestr(name, "escaped")
    return target


def model_bare_lambda(world, target, marker):
    """A bare .keras (with --vocab) holding the Lambda layer."""
    directory = model_lambda(world, target, marker)
    return os.path.join(directory, "model.keras")


def weights_safetensors_pickle(world, target, marker):
    shutil.copytree(world["init"], target)
    with open(os.path.join(target, "model.safetensors"), "wb") as f:
        f.write(pickled(marker))
    return target


def weights_torch_pickle(world, target, marker):
    """pytorch_model.bin that is a plain pickle with the payload (torch.load would run it
    without weights_only)."""
    shutil.copytree(world["init"], target)
    os.remove(os.path.join(target, "model.safetensors"))
    with open(os.path.join(target, "pytorch_model.bin"), "wb") as f:
        f.write(pickled(marker))
    return target


def weights_npy_pickle(world, target, marker):
    """An object array saved with numpy (np.load(allow_pickle=True) would unpickle it)."""
    os.makedirs(target)
    shutil.copy(os.path.join(world["init"], "vocab.txt"), target)
    path = os.path.join(target, "weights.npy")
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return path


def weights_index_escape(world, target, marker):
    """A shard index whose weight_map points to ../elsewhere/model.safetensors (which exists)."""
    import json
    shutil.copytree(world["init"], target)
    elsewhere = os.path.join(os.path.dirname(target), "elsewhere-" + os.path.basename(target))
    os.makedirs(elsewhere)
    os.replace(os.path.join(target, "model.safetensors"),
               os.path.join(elsewhere, "model.safetensors"))
    from safetensors import safe_open
    with safe_open(os.path.join(elsewhere, "model.safetensors"), "np") as f:
        names = list(f.keys())
    relative = os.path.join("..", os.path.basename(elsewhere), "model.safetensors")
    with open(os.path.join(target, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": {n: relative for n in names}}, f)
    return target


def model_commands(world, given, out):
    return {"predict": ["predict", "--model", given],
            "export saved-model": ["export", "saved-model", "--model", given, "--out", out],
            "export tflite": ["export", "tflite", "--model", given, "--out",
                              os.path.join(out, "m.tflite"), "--no-verify"],
            "distill --teacher": ["distill", "--teacher", given, "--student-layers", 1,
                                  "--train", world["train"], "--out", out, "--epochs", "1",
                                  "--no-progress"]}


def bare_commands(world, given, out):
    vocab = os.path.join(world["model"], "vocab.txt")
    return {"export saved-model": ["export", "saved-model", "--model", given, "--vocab", vocab,
                                   "--out", out],
            "export tflite": ["export", "tflite", "--model", given, "--vocab", vocab, "--out",
                              os.path.join(out, "m.tflite"), "--no-verify"]}


def weights_commands(world, given, out):
    return {"finetune --init": ["finetune", "classify", "--init", given, "--train",
                                world["train"], "--out", out, "--max-length", 16,
                                "--batch-size", 8, "--epochs", "1", "--strategy", "one_device",
                                "--no-progress"],
            "convert": ["convert", "--input", given, "--output", out]}


# (name, builder, commands, expected class, words of the error)
HOSTILE = [
    ("pickle as model.keras", model_pickle, model_commands, "CLEAR",
     ["model.keras", "cannot load the Keras model"]),
    ("Lambda layer in model.keras", model_lambda, model_commands, "CLEAR",
     ["model.keras", "cannot load the Keras model", "Lambda"]),
    ("Lambda layer in a bare .keras", model_bare_lambda, bare_commands, "CLEAR",
     ["model.keras", "cannot load the Keras model", "Lambda"]),
    ("zip members with ..", model_zip_slip, model_commands, "OK", []),
    ("pickle named model.safetensors", weights_safetensors_pickle, weights_commands, "CLEAR",
     ["model.safetensors"]),
    ("pickle as pytorch_model.bin", weights_torch_pickle, weights_commands, "CLEAR",
     ["pytorch_model.bin", "weights_only=True", "refused"]),
    ("object .npy", weights_npy_pickle, weights_commands, "CLEAR",
     ["weights.npy", "not a recognised checkpoint"]),
    ("shard index escaping its directory", weights_index_escape, weights_commands, "CLEAR",
     ["model.safetensors.index.json", "outside"]),
]
CASES = [(name, build, command, expected, words)
         for name, build, commands, expected, words in HOSTILE
         for command in commands({"model": "", "train": ""}, "", "")]


@pytest.mark.slow
@pytest.mark.parametrize("name, build, command, expected, words", CASES,
                         ids=[f"{c[3]}-{c[0]} -> {c[2]}" for c in CASES])
def test_hostile_file(world, tmp_path, capsys, monkeypatch, name, build, command, expected,
                      words):
    case_dir = tmp_path / "case"
    sentinel = tmp_path / "sentinel"
    os.makedirs(sentinel / "inner")
    (sentinel / "keep.txt").write_text("keep")
    marker = str(tmp_path / "code-ran")
    given = build(world, str(case_dir / "given"), marker)
    out = str(case_dir / "out")
    argv = [str(a) for a in HOSTILE_COMMANDS[name](world, given, out)[command]]
    monkeypatch.chdir(sentinel / "inner")      # a relative escape would land in the sentinel
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good movie\n"),
                                                       encoding="utf-8"))
    before = {"sentinel": snapshot(sentinel), "given": snapshot(case_dir / "given"),
              "tmp": set(os.listdir(tempfile.gettempdir()))}
    capsys.readouterr()
    code = bert_tf.cli.main(argv)
    err = capsys.readouterr().err
    # Nothing ran, nothing outside the output changed.
    if os.path.exists(marker):
        raise Unsafe(f"{name} → {command}: the file's code ran (marker {marker} exists)")
    if snapshot(sentinel) != before["sentinel"]:
        raise Unsafe(f"{name} → {command}: the sentinel directory changed")
    if snapshot(case_dir / "given") != before["given"]:
        raise Unsafe(f"{name} → {command}: the input was changed")
    escaped = [p for p in (os.path.join(d, f"escape-{i}.txt") for i in range(1, 5)
                           for d in (tmp_path, case_dir, tempfile.gettempdir(),
                                     os.path.dirname(tmp_path)))
               if os.path.exists(p)]
    if escaped:
        raise Unsafe(f"{name} → {command}: archive members escaped to {escaped}")
    new_in_tmp = [n for n in set(os.listdir(tempfile.gettempdir())) - before["tmp"]
                  if "escape" in n]
    if new_in_tmp:
        raise Unsafe(f"{name} → {command}: {new_in_tmp} appeared in {tempfile.gettempdir()}")
    if expected == "OK":
        assert code == 0, err
        return
    if code != 2:
        raise SilentWrong(f"{name} → {command}: exit {code}, expected the clear error (2): {err}")
    assert err.count("\n") == 1 and "Traceback" not in err, err
    require_words(err, words)
    assert not os.path.exists(os.path.join(out, "1")) and not os.path.exists(
        os.path.join(out, "m.tflite")), "an output was written from a hostile file"


HOSTILE_COMMANDS = {name: commands for name, _, commands, _, _ in HOSTILE}
