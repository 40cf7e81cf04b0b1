"""`finetune` draws its own curves (issue 22 item 3): OUT/curves.png from the run's TensorBoard
scalars — training loss and learning rate by step, the eval metric by evaluation, best marked."""

import json
import os
import struct

import numpy as np
import tensorflow as tf

import bert_tf.cli
from bert_tf.training.curves import draw_curves, read_scalars
from tests.harness import write_tiny_classification, write_tiny_init


def png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])   # width, height


def test_finetune_writes_curves_from_its_own_history(tmp_path):
    init = write_tiny_init(tmp_path / "init", max_position_embeddings=32)
    train = write_tiny_classification(tmp_path / "train.csv", n=32)
    dev = write_tiny_classification(tmp_path / "dev.csv", n=16, seed=1)
    out = str(tmp_path / "out")
    assert bert_tf.cli.main(["finetune", "classify", "--init", init, "--train", train, "--eval",
                             dev, "--out", out, "--max-length", "16", "--batch-size", "8",
                             "--epochs", "3", "--no-progress", "--strategy", "one_device"]) == 0
    width, height = png_size(os.path.join(out, "curves.png"))
    assert (width, height) == (1500, 360)   # three panels: loss, learning rate, accuracy
    assert os.path.getsize(os.path.join(out, "curves.png")) > 20_000
    scalars = read_scalars(os.path.join(out, "tensorboard"))
    history = json.load(open(os.path.join(out, "eval_history.json")))["history"]
    assert [s for s, _ in scalars["eval/accuracy"]] == [s for s, _ in history] == [4, 8, 12]
    np.testing.assert_allclose([v for _, v in scalars["eval/accuracy"]],
                               [m["accuracy"] for _, m in history], rtol=1e-6)
    assert [s for s, _ in scalars["train/loss"]][-1] == 12
    assert scalars["train/learning_rate"][-1][1] == 0.0   # linear decay to 0 at the last step


def test_latest_value_of_a_step_wins_and_nothing_logged_draws_nothing(tmp_path):
    log_dir = str(tmp_path / "run" / "tensorboard")
    for values in ([(1, 5.0), (2, 4.0)], [(2, 3.0), (3, 2.0)]):   # a resumed run logs step 2 again
        writer = tf.summary.create_file_writer(log_dir)
        with writer.as_default():
            for step, value in values:
                tf.summary.scalar("train/loss", value, step=step)
        writer.close()
    assert read_scalars(log_dir)["train/loss"] == [(1, 5.0), (2, 3.0), (3, 2.0)]
    assert draw_curves(str(tmp_path / "run")) == os.path.join(str(tmp_path / "run"), "curves.png")
    assert png_size(os.path.join(str(tmp_path / "run"), "curves.png")) == (500, 360)  # loss only
    os.makedirs(tmp_path / "empty")
    assert draw_curves(str(tmp_path / "empty")) is None
