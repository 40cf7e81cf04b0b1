"""Checkpoints survive damage (issue 17, item 3): the last two (at least) are kept; a damaged
newest one is skipped with a warning naming its file (OK: the previous one is restored); a damaged
only one, or a state file that does not parse, is one error naming the file (CLEAR); no checkpoint
is deleted before its successor is written and read back.

Table-driven: the damage kinds are applied to the newest of two checkpoints and to an only one."""

import glob
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf.training import Trainer, TrainingError, TrainingOptions, create_optimizer
from bert_tf.training.checkpoints import (CheckpointError, newest_sound_checkpoint, read_state,
                                          write_checkpoint)
from tests.reliability.cases import require_words

CLEAR, OK = "CLEAR", "OK"


def data_file(prefix):
    return glob.glob(prefix + ".data-*")[0]


def truncate(prefix):
    path = data_file(prefix)
    with open(path, "rb") as f:
        head = f.read(os.path.getsize(path) // 2)
    with open(path, "wb") as f:
        f.write(head)
    return path


def empty(prefix):
    path = data_file(prefix)
    open(path, "wb").close()
    return path


def flip_a_byte(prefix):
    path = data_file(prefix)
    with open(path, "r+b") as f:
        f.seek(10)
        byte = f.read(1)
        f.seek(10)
        f.write(bytes([byte[0] ^ 0xFF]))
    return path


def drop_index(prefix):
    os.remove(prefix + ".index")
    return prefix + ".index"


def empty_index(prefix):
    open(prefix + ".index", "wb").close()
    return prefix + ".index"


def drop_data(prefix):
    path = data_file(prefix)
    os.remove(path)
    return prefix + ".data-00000-of-00001"


DAMAGES = {"truncated data": truncate, "empty data": empty, "flipped byte": flip_a_byte,
           "missing index": drop_index, "empty index": empty_index, "missing data": drop_data}


def write_numbered(directory, numbers, keep=2):
    """Checkpoints of one variable (value = the number) written as the trainer writes them."""
    variable = tf.Variable(np.zeros(256, "float32"))
    checkpoint = tf.train.Checkpoint(v=variable)
    prefixes = []
    for number in numbers:
        variable.assign(np.full(256, number, "float32"))
        prefixes.append(write_checkpoint(checkpoint, str(directory), number, keep))
    return prefixes


def restored_value(prefix):
    return int(tf.train.load_checkpoint(prefix).get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE")[0])


# (damage, which checkpoint: "newest of two" -> OK fallback, "only" -> CLEAR error naming it)
CASES = [(name, where) for name in DAMAGES for where in ("newest of two", "only")]


@pytest.mark.parametrize("damage, where", CASES, ids=[
    f"{'OK' if w == 'newest of two' else 'CLEAR'}-{d}, {w}" for d, w in CASES])
def test_damaged_checkpoint(tmp_path, caplog, damage, where):
    prefixes = write_numbered(tmp_path, [1, 2] if where == "newest of two" else [1])
    damaged_file = DAMAGES[damage](prefixes[-1])
    if where == "newest of two":      # OK: warn naming the file, restore the previous one
        with caplog.at_level(logging.WARNING):
            chosen = newest_sound_checkpoint(str(tmp_path))
        assert chosen == prefixes[0] and restored_value(chosen) == 1
        assert damaged_file in caplog.text and "damaged checkpoint skipped" in caplog.text
    else:                             # CLEAR: one error naming the file
        with pytest.raises(CheckpointError) as error:
            newest_sound_checkpoint(str(tmp_path))
        assert "the only checkpoint is damaged" in str(error.value)
        assert damaged_file in str(error.value)


def _state(directory, text):
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write(text)


# (name, set-up after two checkpoints, expected: "ckpt-N" restored (OK) or words (CLEAR))
STATE_CASES = [
    ("garbage state file", lambda d: _state(d, "this is not a proto {{{"),
     ["checkpoint: damaged checkpoint state file", "not restarting from step 0"]),
    ("state file without a path", lambda d: _state(d, ""),
     ["checkpoint: damaged checkpoint state file"]),
    ("state file names a path outside", lambda d: _state(
        d, 'model_checkpoint_path: "../elsewhere/ckpt-1"\n'), ["outside"]),
    ("state file is a directory", lambda d: (os.remove(os.path.join(d, "checkpoint")),
                                             os.mkdir(os.path.join(d, "checkpoint"))),
     ["not a regular file"]),
    ("both damaged", lambda d: (truncate(os.path.join(d, "ckpt-1")),
                                drop_index(os.path.join(d, "ckpt-2"))),
     ["every checkpoint is damaged", "ckpt-1.data-00000-of-00001", "ckpt-2.index"]),
    ("state file missing (first save killed before it)", lambda d: os.remove(
        os.path.join(d, "checkpoint")), None),
    ("intact", lambda d: None, "ckpt-2"),
]


@pytest.mark.parametrize("name, setup, expected", STATE_CASES, ids=[
    ("CLEAR-" if isinstance(c[2], list) else "OK-") + c[0] for c in STATE_CASES])
def test_checkpoint_state_cases(tmp_path, name, setup, expected):
    write_numbered(tmp_path, [1, 2])
    setup(str(tmp_path))
    if expected is None or isinstance(expected, str):
        chosen = newest_sound_checkpoint(str(tmp_path))
        assert (chosen and os.path.basename(chosen)) == expected
        return
    with pytest.raises(CheckpointError) as error:
        newest_sound_checkpoint(str(tmp_path))
    require_words(str(error.value), expected)


@pytest.mark.expect("OK")
def test_keeps_the_last_two_and_lists_them(tmp_path):
    write_numbered(tmp_path, [1, 2, 3])
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-2.data-00000-of-00001",
                                            "ckpt-2.index", "ckpt-3.data-00000-of-00001",
                                            "ckpt-3.index"]
    assert [os.path.basename(p) for p in read_state(str(tmp_path))] == ["ckpt-2", "ckpt-3"]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")   # TF's reader agrees


@pytest.mark.expect("CLEAR")
def test_a_write_that_does_not_read_back_deletes_nothing(tmp_path, monkeypatch):
    """The new checkpoint is verified before the state file lists it and before the old ones
    are deleted: a bad write leaves the previous two listed and whole."""
    write_numbered(tmp_path, [1, 2])
    before = sorted(os.listdir(tmp_path))
    real_write = tf.train.Checkpoint.write

    def write_then_damage(self, prefix, *args, **kwargs):
        path = real_write(self, prefix, *args, **kwargs)
        truncate(prefix)            # as a full disk or a dying device would leave it
        return path

    monkeypatch.setattr(tf.train.Checkpoint, "write", write_then_damage)
    with pytest.raises(CheckpointError, match="just written does not read back.*ckpt-3"):
        write_numbered(tmp_path, [3])
    assert set(before) <= set(os.listdir(tmp_path))
    assert [os.path.basename(p) for p in read_state(str(tmp_path))] == ["ckpt-1", "ckpt-2"]
    assert restored_value(newest_sound_checkpoint(str(tmp_path))) == 2


@pytest.mark.expect("OK")
def test_after_a_fallback_the_damaged_future_is_replaced(tmp_path):
    write_numbered(tmp_path, [1, 2, 3])
    truncate(os.path.join(str(tmp_path), "ckpt-3"))
    assert newest_sound_checkpoint(str(tmp_path)).endswith("ckpt-2")
    write_numbered(tmp_path, [3])        # the resumed run reaches step 3 again
    assert [os.path.basename(p) for p in read_state(str(tmp_path))] == ["ckpt-2", "ckpt-3"]
    assert restored_value(newest_sound_checkpoint(str(tmp_path))) == 3


# ---------------------------------------------------------------------- through the Trainer
def _trainer(model_dir, total_steps):
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        optimizer = create_optimizer("adamw", 1e-2, total_steps=10)

    def loss(outputs, targets):
        return {"loss": tf.reduce_mean(tf.square(outputs[:, 0] - targets))}

    return Trainer(model, loss, optimizer, strategy, str(model_dir), TrainingOptions(
        total_steps=total_steps, checkpoint_every=1, log_every=1, progress=False,
        keep_checkpoints=2))


def _dataset():
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, x.sum(1))).repeat().batch(4)


@pytest.mark.expect("CLEAR")
def test_trainer_falls_back_past_a_damaged_newest_and_refuses_a_garbage_state(tmp_path, caplog):
    assert _trainer(tmp_path, 3).fit(_dataset()).step == 3
    checkpoints = os.path.join(str(tmp_path), "checkpoints")
    assert sorted(glob.glob(os.path.join(checkpoints, "*.index"))) == [
        os.path.join(checkpoints, "ckpt-2.index"), os.path.join(checkpoints, "ckpt-3.index")]
    damaged = truncate(os.path.join(checkpoints, "ckpt-3"))
    with caplog.at_level(logging.INFO):
        result = _trainer(tmp_path, 4).fit(_dataset())
    assert damaged in caplog.text and "resumed from" in caplog.text and \
        os.path.join(checkpoints, "ckpt-2") in caplog.text
    assert result.step == 4 and result.checkpoint.endswith("ckpt-4")

    kept = sorted(os.listdir(checkpoints))
    _state(checkpoints, "garbage")
    with pytest.raises(TrainingError, match="damaged checkpoint state file"):
        _trainer(tmp_path, 6).fit(_dataset())
    assert sorted(os.listdir(checkpoints)) == kept        # nothing deleted, no restart
