"""Remote storage end to end: every path of the lifecycle is a URI of TensorFlow's in-process
`ram://` file system, standing in for gs:// (it has no directory rename and no modification
times, like an object store), while a tripwire makes any local-file call on such a path
(`open`, `os.path.*`, `os.makedirs`, `shutil`, `tempfile` in it) fail the test. What works here
works on any file system tf.io.gfile serves."""

import builtins
import json
import os
import shutil
import sys
import tempfile
import uuid

import numpy as np
import pytest
import tensorflow as tf

import bert_tf.cli
from bert_tf import atomic, fileio
from bert_tf.data import classification, datasets
from tests.test_training import tiny_config

class LocalIOOnRemotePath(AssertionError):
    pass


def _is_ram(value) -> bool:
    return isinstance(value, (str, bytes, os.PathLike)) and "ram:" in os.fsdecode(
        os.fspath(value))


PACKAGE = os.path.dirname(bert_tf.__file__) + os.sep
THIRD_PARTY = (f"{os.sep}tensorflow{os.sep}", f"{os.sep}keras{os.sep}", f"{os.sep}tf_keras{os.sep}")


def _called_by_bert_tf() -> bool:
    """Whether the nearest caller that is not the standard library is bert_tf. TensorFlow and
    Keras handle remote paths themselves (their own glob of a checkpoint directory finds nothing
    there, harmlessly): a call they make is theirs, not ours."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(PACKAGE):
            return True
        if any(part in name for part in THIRD_PARTY):
            return False
        frame = frame.f_back
    return False


def _guard(function):
    def guarded(*args, **kwargs):
        for value in list(args) + list(kwargs.values()):
            if _is_ram(value) and _called_by_bert_tf():
                raise LocalIOOnRemotePath(f"{function.__module__}.{function.__name__} was called "
                                          f"on the remote path {value!r}")
        return function(*args, **kwargs)
    return guarded


LOCAL_IO = [(builtins, "open"), (os, "open"), (os, "makedirs"), (os, "mkdir"), (os, "listdir"),
            (os, "scandir"), (os, "remove"), (os, "unlink"), (os, "rename"), (os, "replace"),
            (os, "rmdir"), (os, "stat"), (os, "lstat"), (os, "chmod"), (os.path, "exists"),
            (os.path, "lexists"), (os.path, "isdir"), (os.path, "isfile"),
            (os.path, "getsize"), (os.path, "getmtime"), (os.path, "abspath"),
            (os.path, "realpath"), (shutil, "rmtree"), (shutil, "copyfile"), (shutil, "copy"),
            (shutil, "move"), (tempfile, "mkdtemp"), (tempfile, "mkstemp")]


@pytest.fixture
def tripwire(monkeypatch):
    """Local-file functions refuse remote paths (a `gs://b/x` given to them would read or
    write a local `gs:/b/x`, or fail)."""
    for module, name in LOCAL_IO:
        monkeypatch.setattr(module, name, _guard(getattr(module, name)))


def cli(*argv):
    return bert_tf.cli.main([str(a) for a in argv])


def _as_bert_tf_code(source: str, **names):
    """Runs `source` as if it were a line of bert_tf (the tripwire judges bert_tf's calls)."""
    exec(compile(source, os.path.join(PACKAGE, "probe.py"), "exec"), {"os": os, **names})


def test_the_tripwire_catches_local_io_on_a_remote_path(tripwire):
    with pytest.raises(LocalIOOnRemotePath):
        _as_bert_tf_code("open('ram://x/file.txt', 'w')")
    with pytest.raises(LocalIOOnRemotePath):     # what abspath-then-makedirs would do
        _as_bert_tf_code("os.makedirs(os.path.abspath('ram://x/run'))")
    with pytest.raises(LocalIOOnRemotePath):
        _as_bert_tf_code("glob.glob('ram://x/*')", glob=__import__("glob"))
    _as_bert_tf_code("assert not os.path.exists('/nonexistent-local-path')")   # local: fine
    assert not os.path.exists("ram://x")     # a call from outside bert_tf is not judged


def test_fileio_on_a_remote_path_behaves_like_os(tripwire):
    root = f"ram://fileio-{uuid.uuid4().hex}"
    with pytest.raises(FileNotFoundError):
        fileio.open(f"{root}/missing.txt")
    fileio.makedirs(f"{root}/a/b")
    with fileio.open(f"{root}/a/b/t.csv", "w", encoding="utf-8", newline="") as f:
        f.write("x,y\r\nä,1\r\n")
    with fileio.open(f"{root}/a/b/t.csv", encoding="utf-8") as f:     # universal newlines
        assert f.read() == "x,y\nä,1\n"
    with fileio.open(f"{root}/a/b/t.csv", "rb") as f:
        assert f.read() == "x,y\r\nä,1\r\n".encode("utf-8")
    assert fileio.isdir(f"{root}/a") and fileio.isfile(f"{root}/a/b/t.csv")
    with pytest.raises(FileExistsError):      # os.makedirs's default, exist_ok=False
        fileio.makedirs(f"{root}/a")
    assert fileio.listdir(f"{root}/a") == ["b"]
    assert fileio.glob(f"{root}/**/*.csv", recursive=True) == [f"{root}/a/b/t.csv"]
    assert fileio.glob(f"{root}/a/*/*.csv") == [f"{root}/a/b/t.csv"]
    assert fileio.abspath(root) == root and fileio.getsize(f"{root}/a/b/t.csv") == 11
    with pytest.raises(IsADirectoryError):
        fileio.open(f"{root}/a")
    with pytest.raises(FileExistsError):
        fileio.open(f"{root}/a/b/t.csv", "x")
    atomic.write_json_atomic(f"{root}/a/r.json", {"k": 1})
    assert json.load(fileio.open(f"{root}/a/r.json")) == {"k": 1}
    assert [n for n in fileio.listdir(f"{root}/a") if n.startswith(".tmp-")] == []
    fileio.rmtree(f"{root}/a")
    assert not fileio.exists(f"{root}/a/b/t.csv") and not fileio.exists(f"{root}/a/r.json")


def test_a_failed_remote_directory_write_publishes_nothing(tripwire):
    root = f"ram://staged-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError):
        with atomic.replaced_directory(f"{root}/out") as staging:
            with open(os.path.join(staging, "config.json"), "w") as f:   # staging is local
                f.write("{}")
            raise RuntimeError("killed midway")
    assert not fileio.exists(f"{root}/out")
    order = []
    real_copy = fileio.copy
    with pytest.MonkeyPatch.context() as m:
        m.setattr(fileio, "copy", lambda s, d, overwrite=True: (order.append(
            os.path.basename(d)), real_copy(s, d, overwrite)))
        with atomic.replaced_directory(f"{root}/out") as staging:
            for name in ("config.json", "model.safetensors", "vocab.txt"):
                with open(os.path.join(staging, name), "w") as f:
                    f.write(name)
            os.makedirs(os.path.join(staging, "assets"))
            with open(os.path.join(staging, "assets", "a.txt"), "w") as f:
                f.write("a")
    assert order[-1] == "config.json"     # the completion marker goes last
    assert sorted(fileio.walk_files(f"{root}/out")) == [
        "assets/a.txt", "config.json", "model.safetensors", "vocab.txt"]


def _upload(local: str, remote: str) -> str:
    fileio.copy(local, remote)
    return remote


@pytest.mark.slow
def test_the_lifecycle_runs_with_every_path_remote(tmp_path, minilm_vocab, tripwire, capsys):
    """create-pretraining-data → pretrain → finetune → evaluate → predict → export (SavedModel
    and TFLite), every input and output a ram:// URI; the results are the files the commands
    document."""
    root = f"ram://lifecycle-{uuid.uuid4().hex}"
    fileio.makedirs(f"{root}/in")
    vocab = _upload(minilm_vocab, f"{root}/in/vocab.txt")
    texts = [t for t, _ in datasets.rotten_tomatoes("train")[:240]]
    with fileio.open(f"{root}/in/corpus.txt", "w", encoding="utf-8") as f:
        for start in range(0, len(texts), 6):   # documents of 6 snippets, one per line
            f.write("\n".join(texts[start:start + 6]) + "\n\n")
    config = f"{root}/in/config.json"
    tiny_config(dropout=0.0).to_json_file(str(tmp_path / "config.json"))
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(vocab_size=30522, max_position_embeddings=64)
    with fileio.open(config, "w") as f:
        json.dump(cfg, f)
    names = datasets.ROTTEN_TOMATOES_LABELS
    train, dev = f"{root}/in/train.csv", f"{root}/in/dev.csv"
    classification.write_classification(
        train, [(t, names[y]) for t, y in datasets.rotten_tomatoes("train")[:32]])
    classification.write_classification(
        dev, [(t, names[y]) for t, y in datasets.rotten_tomatoes("dev")[:16]])

    data = f"{root}/data"
    assert cli("create-pretraining-data", "--input", f"{root}/in/corpus.txt", "--vocab", vocab,
               "--output", data, "--max-seq-length", 32, "--max-predictions-per-seq", 5,
               "--dupe-factor", 1, "--no-progress") == 0
    assert "metadata.json" in fileio.listdir(data)

    run = f"{root}/pretrain"
    assert cli("pretrain", "--config", config, "--data", f"{data}/*.tfrecord", "--out", run,
               "--steps", 4, "--batch-size", 4, "--max-seq-length", 32,
               "--max-predictions-per-seq", 5, "--checkpoint-every", 2, "--strategy",
               "one_device", "--no-progress") == 0
    assert {"run.json", "checkpoints", "pretrained"} <= set(fileio.listdir(run))
    assert tf.train.latest_checkpoint(f"{run}/checkpoints").endswith("-4")
    assert "config.json" in fileio.listdir(f"{run}/pretrained")
    # Rerunning the finished command resumes from the remote checkpoint and has nothing to do.
    assert cli("pretrain", "--config", config, "--data", f"{data}/*.tfrecord", "--out", run,
               "--steps", 4, "--batch-size", 4, "--max-seq-length", 32,
               "--max-predictions-per-seq", 5, "--checkpoint-every", 2, "--strategy",
               "one_device", "--no-progress") == 0

    model = f"{root}/finetuned"
    assert cli("finetune", "classify", "--init", f"{run}/pretrained", "--vocab", vocab,
               "--train", train, "--eval", dev, "--out", model, "--max-length", 32,
               "--batch-size", 8, "--epochs", 1, "--no-progress", "--strategy",
               "one_device") == 0
    assert {"task.json", "model.keras", "labels.json", "vocab.txt"} <= set(fileio.listdir(model))
    capsys.readouterr()

    assert cli("evaluate", "--model", model, "--data", dev) == 0
    scores = json.loads(capsys.readouterr().out)
    predictions = f"{root}/predictions.jsonl"
    assert cli("predict", "--model", model, "--data", dev, "--output", predictions) == 0
    with fileio.open(predictions, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 16
    gold = classification.read_classification(dev)
    predicted = [gold.label_names.index(r["label"]) if "label" in r else None for r in rows]
    assert np.mean(np.equal(predicted, gold.labels)) == pytest.approx(scores["accuracy"])

    serving = f"{root}/serving"
    assert cli("export", "saved-model", "--model", model, "--out", serving) == 0
    versions = fileio.listdir(serving)
    version = [v for v in versions if v.isdigit()]
    assert version == ["1"], versions
    assert "saved_model.pb" in fileio.listdir(f"{serving}/1")
    tflite = f"{root}/mobile/model.tflite"     # converted and verified against Keras
    assert cli("export", "tflite", "--model", model, "--out", tflite,
               "--verify-examples", 8) == 0
    assert fileio.getsize(tflite) > 0
    leftovers = [p for p in fileio.glob(f"{root}/*/.tmp-*") + fileio.glob(f"{root}/.tmp-*")]
    assert leftovers == []
