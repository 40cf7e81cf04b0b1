"""Concurrency and leftovers of the export writers: two concurrent exports to one model
directory both publish complete versions; stale temporaries of killed writers are removed at the
next write (the rule in bert_tf.atomic); a TFLite model whose verification fails is not left on
disk unless --keep-unverified."""

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import bert_tf.cli
from bert_tf import atomic
from bert_tf.atomic import StagingDir, clean_stale_temps
from bert_tf.export import ExportError, export_saved_model
from tests.reliability.cases import Case, check, params
from tests.reliability.test_serving_contracts import VOCAB, tiny_model


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


DAY = 24 * 3600
OTHER_HOST = "someotherhost"
TEMPS = [
    # (name pattern with {pid}/{host}, age in seconds, kind); OK = kept, CLEAR = removed
    Case("dead-owner-dir", "OK", (".tmp-1-{dead}@{host}-ab_c12", 0, "dir", "removed")),
    Case("dead-owner-assets", "OK", (".tmp-1-{dead}@{host}-ab_c12-assets", 0, "dir", "removed")),
    Case("dead-owner-file", "OK", (".tmp-labels.json-{dead}@{host}-x9y8z7", 0, "file",
                                   "removed")),
    Case("dead-owner-suffix", "OK", (".tmp-model.keras-{dead}@{host}-x9y8z7.keras", 0, "file",
                                     "removed")),
    Case("dead-owner-tflite", "OK", (".tmp-tflite-{dead}@{host}-qwerty12", 0, "dir", "removed")),
    Case("dead-owner-name-with-dashes", "OK", (".tmp-my-model-7-{dead}@{host}-abcd1234", 0, "dir",
                                               "removed")),
    Case("live-owner", "OK", (".tmp-1-{live}@{host}-abcd1234", 0, "dir", "kept")),
    Case("this-process", "OK", (".tmp-1-{own}@{host}-abcd1234", 0, "dir", "kept")),
    Case("other-host-fresh", "OK", (".tmp-1-{dead}@" + OTHER_HOST + "-abcd1234", 0, "dir",
                                    "kept")),
    Case("other-host-two-days", "OK", (".tmp-1-{dead}@" + OTHER_HOST + "-abcd1234", 2 * DAY,
                                       "dir", "removed")),
    Case("live-owner-two-days", "OK", (".tmp-1-{live}@{host}-abcd1234", 2 * DAY, "dir",
                                       "removed")),
    Case("live-owner-23-hours", "OK", (".tmp-1-{live}@{host}-abcd1234", 23 * 3600, "dir",
                                       "kept")),
    Case("no-owner-old", "OK", (".tmp-abcd1234", 2 * DAY, "dir", "kept")),
    Case("user-hidden-file", "OK", (".tmpfile", 2 * DAY, "file", "kept")),
    Case("version-dir", "OK", ("1", 2 * DAY, "dir", "kept")),
    Case("dead-owner-symlink", "OK", (".tmp-1-{dead}@{host}-abcd1234", 0, "link", "removed")),
]


@pytest.mark.parametrize("case", params(TEMPS))
def test_stale_temporaries_rule(case, tmp_path):
    pattern, age, kind, fate = case.inputs
    name = pattern.format(dead=dead_pid(), live=os.getppid(), own=os.getpid(),
                          host=atomic.HOST_TAG)
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("outside")
    path = base / name
    if kind == "dir":
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"half")
    elif kind == "file":
        path.write_bytes(b"half")
    else:
        os.symlink(outside, path)
    if age:
        then = time.time() - age
        os.utime(path, (then, then), follow_symlinks=False)
    removed = clean_stale_temps(str(base))
    assert (fate == "removed") == (removed == [str(path)]), removed
    assert os.path.lexists(path) == (fate == "kept")
    assert (outside / "keep.txt").read_text() == "outside"   # a link's target is never entered


@pytest.mark.expect("OK")
def test_host_tag_is_a_path_component():
    assert atomic.HOST_TAG.isalnum() and socket.gethostname()


# ------------------------------------------------------------------ StagingDir publishing
def build_with_collision(final, next_final, collide=True):
    staging = StagingDir(final, next_final)
    with staging as tmp:
        with open(os.path.join(tmp, "saved_model.pb"), "w") as f:
            f.write("complete")
        if collide:   # another writer publishes the same version meanwhile
            os.makedirs(final)
            with open(os.path.join(final, "saved_model.pb"), "w") as f:
                f.write("theirs")
    return staging.final


STAGING = [
    Case("no-collision", "OK", (False, True)),
    Case("collision-takes-next", "OK", (True, True)),
    Case("collision-explicit-version", "CLEAR", (True, False), ("appeared while",)),
]


@pytest.mark.parametrize("case", params(STAGING))
def test_staging_dir_publishes_or_fails_cleanly(case, tmp_path):
    collide, retry = case.inputs
    final = str(tmp_path / "1")
    next_final = (lambda: str(tmp_path / str(1 + max(int(n) for n in os.listdir(tmp_path)
                                                       if n.isdigit())))) if retry else None
    out = check(case, lambda: build_with_collision(final, next_final, collide))
    if case.expect == "OK":
        assert out == str(tmp_path / ("2" if collide else "1"))
        assert open(os.path.join(out, "saved_model.pb")).read() == "complete"
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.startswith(".")], names   # no staging left behind
    if collide:
        assert open(tmp_path / "1" / "saved_model.pb").read() == "theirs"   # never replaced


# ------------------------------------------------------------------ concurrent exports
@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.slow
@pytest.mark.expect("OK")
def test_two_concurrent_exports_get_distinct_complete_versions(model, tmp_path):
    base = tmp_path / "saved_models" / "tiny"
    base.mkdir(parents=True)
    stale = base / f".tmp-1-{dead_pid()}@{atomic.HOST_TAG}-abcd1234"   # a killed export's
    foreign = base / f".tmp-1-{dead_pid()}@{OTHER_HOST}-abcd1234"       # maybe alive elsewhere
    for folder in (stale, foreign):
        folder.mkdir()
    start, results, errors = threading.Barrier(2), [], []

    def export():
        try:
            start.wait()
            results.append(export_saved_model(model, base))
        except BaseException as e:   # reported below, with the other thread's result
            errors.append(e)
    threads = [threading.Thread(target=export) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == [str(base / "1"), str(base / "2")]
    assert sorted(os.listdir(base)) == sorted(["1", "2", foreign.name])   # stale one cleaned
    ids = {"input_ids": tf.constant([[2, 7, 8, 3]]), "token_type_ids": tf.zeros([1, 4], tf.int32),
           "attention_mask": tf.ones([1, 4], tf.int32)}
    outputs = [tf.saved_model.load(p).signatures["serve_ids"](**ids)["logits"].numpy()
               for p in results]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    config = (base.parent / "models.config").read_text()
    assert config.count("name: 'tiny'") == 1


@pytest.mark.expect("CLEAR")
def test_explicit_version_taken_meanwhile_is_a_clear_error(model, tmp_path, monkeypatch):
    from bert_tf.export import saved_model
    base = tmp_path / "tiny"
    real = saved_model.write_warmup_requests

    def and_someone_publishes_version_1(*args):
        real(*args)
        (base / "1").mkdir()
    monkeypatch.setattr(saved_model, "write_warmup_requests", and_someone_publishes_version_1)
    with pytest.raises(ExportError, match="appeared while this export was written"):
        export_saved_model(model, base, version=1)
    assert os.listdir(base) == ["1"]


# ------------------------------------------------------------------ TFLite verification
@pytest.fixture(scope="module")
def bare_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("bare")
    tiny_model(max_positions=128).save(str(root / "model.keras"))  # a bare file: max_length 128
    (root / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB))
    return root


TFLITE = [
    # (extra flags, an older file at --out, exit status, what --out holds afterwards)
    Case("verification-fails", "OK", ([], False, 2, None)),
    Case("verification-fails-keep", "OK", (["--keep-unverified"], False, 2, "new")),
    Case("verification-fails-old-kept", "OK", ([], True, 2, "old")),
]


@pytest.mark.parametrize("case", params(TFLITE))
def test_tflite_failing_verification_leaves_no_model(case, bare_model, tmp_path, capsys):
    flags, old, status, holds = case.inputs
    out = tmp_path / "m.tflite"
    if old:
        out.write_bytes(b"old model")
    # An unknown verification dataset makes verification fail after a good conversion.
    argv = ["export", "tflite", "--model", str(bare_model / "model.keras"), "--vocab",
            str(bare_model / "vocab.txt"), "--out", str(out), "--sequence-length", "8",
            "--without-tokenizer", "--dataset", "no_such_dataset", *flags]
    assert bert_tf.cli.main(argv) == status
    error = capsys.readouterr().err
    assert "verification of the TFLite model failed" in error and "no_such_dataset" in error
    assert os.listdir(tmp_path) == ([] if holds is None else ["m.tflite"])   # no temporaries
    if holds == "old":
        assert out.read_bytes() == b"old model"
    elif holds == "new":
        assert out.read_bytes()[4:8] == b"TFL3"   # a TFLite flatbuffer
