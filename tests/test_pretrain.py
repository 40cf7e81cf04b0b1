"""`pretrain` as users run it, in subprocesses: kill -9 and resume to the same weights (from
TFRecords, and from raw text with dynamic whole-word masking), and MultiWorkerMirroredStrategy
with two local workers."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.training.pretraining import PretrainingConfig, setup_pretraining
from bert_tf.training.trainer import TrainingError
from tests.test_training import VOCAB, tiny_config, write_synthetic_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", **extra)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _safetensors(path):
    from safetensors.numpy import load_file
    return load_file(os.path.join(path, "model.safetensors"))


def _latest_step(out):
    latest = tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.fixture(scope="module")
def records_and_config(tmp_path_factory):
    base = tmp_path_factory.mktemp("pretrain")
    records = write_synthetic_records(str(base / "data"), n=160)
    config = str(base / "config.json")
    tiny_config(dropout=0.1).to_json_file(config)   # dropout on: its RNG state must resume too
    # Raw text over the same VOCAB-word vocabulary, for dynamic masking: 40 documents of 3-8
    # sentences of 4-12 words; "w12" is one piece, "w12 ##x" pairs make whole words of 2 pieces.
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 6)] + ["##x"]
    vocab = str(base / "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(words) + "\n")
    rng = np.random.default_rng(0)
    text = str(base / "corpus.txt")
    with open(text, "w", encoding="utf-8") as f:
        for _ in range(40):
            for _ in range(rng.integers(3, 9)):
                f.write(" ".join(f"w{i}" + ("x" if rng.random() < 0.3 else "")
                                 for i in rng.integers(0, VOCAB - 6, rng.integers(4, 13))) + "\n")
            f.write("\n")
    return base, records, config, text, vocab


@pytest.mark.slow
@pytest.mark.parametrize("source", ["records", "text"])
def test_kill_9_then_resume_gives_uninterrupted_weights(records_and_config, source):
    base, records, config, text, vocab = records_and_config
    steps = 80
    data = (["--data", records] if source == "records" else
            ["--text", text, "--vocab", vocab, "--whole-word-mask", "--max-seq-length", "32",
             "--max-predictions-per-seq", "5"])
    base = base / source
    os.makedirs(base, exist_ok=True)

    def command(out):
        return [sys.executable, "-m", "bert_tf.commands.pretrain", "--config", config,
                *data, "--out", out, "--steps", str(steps), "--batch-size", "8",
                "--warmup-steps", "10", "--learning-rate", "1e-3", "--checkpoint-every", "10",
                "--log-every", "10", "--strategy", "one_device", "--seed", "5", "--no-progress"]

    reference, killed = str(base / "reference"), str(base / "killed")
    # The uninterrupted reference runs beside the one that gets killed (two cores; the result
    # must not depend on timing anyway).
    uninterrupted = subprocess.Popen(command(reference), cwd=REPO, env=_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    process = subprocess.Popen(command(killed), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while _latest_step(killed) < 20 and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    interrupted_at = _latest_step(killed)
    assert 20 <= interrupted_at < steps, f"killed at checkpoint {interrupted_at}"
    assert not os.path.exists(os.path.join(killed, "pretrained"))
    _, reference_log = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, reference_log[-3000:]

    resumed = subprocess.run(command(killed), cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {os.path.join(killed, 'checkpoints', f'ckpt-{interrupted_at}')}" in resumed.stderr
    a, b = _safetensors(os.path.join(reference, "pretrained")), _safetensors(os.path.join(killed, "pretrained"))
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= 1e-6, f"resumed weights differ by {worst}"
    start = _safetensors(os.path.join(reference, "pretrained"))  # sanity: training moved them
    assert set(start) >= {"cls.predictions.bias", "bert.embeddings.word_embeddings.weight"}


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


WORKER = """
import sys
import numpy as np
from bert_tf.training.pretraining import PretrainingConfig, setup_pretraining
from bert_tf.training.trainer import TrainingError
config = PretrainingConfig(sys.argv[1], sys.argv[2], sys.argv[3], total_steps=3, batch_size=8,
                           warmup_steps=1, learning_rate=1e-3, strategy=sys.argv[5], seed=9,
                           log_every=1, checkpoint_every=100, progress=False)
trainer, dataset, _ = setup_pretraining(config)
result = trainer.fit(dataset, global_batch_size=8)
np.savez(sys.argv[4], *[v.numpy() for v in trainer.model.trainable_variables])
print("replicas", trainer.strategy.num_replicas_in_sync, "chief", trainer.is_chief, flush=True)
"""


@pytest.mark.slow
def test_multi_worker_two_local_workers(tmp_path):
    records = write_synthetic_records(str(tmp_path / "data"))
    config = str(tmp_path / "config.json")
    tiny_config(dropout=0.0).to_json_file(config)
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = str(tmp_path / "out")
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, config, records, out, str(tmp_path / f"w{index}.npz"),
             "multi_worker"],
            cwd=REPO, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for w in workers:
            outputs.append(w.communicate(timeout=600))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, (stdout, stderr) in zip(workers, outputs):
        assert w.returncode == 0, stderr[-3000:]
    assert "replicas 2 chief True" in outputs[0][0] and "replicas 2 chief False" in outputs[1][0]
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for name in w0.files:
        np.testing.assert_array_equal(w0[name], w1[name])
    # Only the chief writes checkpoints to OUT; the other worker's scratch is gone.
    assert _latest_step(out) == 3
    scratch = os.path.join(out, ".worker-scratch")
    assert not os.path.isdir(scratch) or not any(files for _, _, files in os.walk(scratch))

    # Two workers with one replica each = one device with the same global batch of 8.
    config_one = PretrainingConfig(config, records, str(tmp_path / "one"), total_steps=3,
                                   batch_size=8, warmup_steps=1, learning_rate=1e-3,
                                   strategy="one_device", seed=9, log_every=1,
                                   checkpoint_every=100, progress=False)
    trainer, dataset, _ = setup_pretraining(config_one)
    trainer.fit(dataset)
    one = {f"arr_{i}": v.numpy() for i, v in enumerate(trainer.model.trainable_variables)}
    worst = max(float(np.abs(one[n] - w0[n]).max()) for n in w0.files)
    assert worst <= 1e-5, f"2 workers differ from 1 device by {worst}"


@pytest.mark.slow
def test_text_or_records_settings_are_checked(records_and_config, tmp_path):
    from bert_tf.training.trainer import TrainingError
    _, records, config, text, vocab = records_and_config

    def settings(**kw):
        return PretrainingConfig(config, kw.pop("data", None), str(tmp_path / "out"), total_steps=2,
                                 warmup_steps=1, batch_size=4, progress=False, **kw)

    cases = [(dict(), "not neither"), (dict(data=records, text=text, vocab_file=vocab), "not both"),
             (dict(text=text), "needs the vocabulary"),
             (dict(data=records, whole_word_mask=True), "apply to raw text"),
             (dict(text=text, vocab_file=vocab, masked_lm_prob=1.5), "must be in \\(0, 1\\)")]
    for kwargs, message in cases:
        with pytest.raises(TrainingError, match=message):
            settings(**kwargs).validate()
    big = str(tmp_path / "big_vocab.txt")
    with open(vocab, encoding="utf-8") as f, open(big, "w", encoding="utf-8") as g:
        g.write(f.read() + "extra\n")
    with pytest.raises(TrainingError, match=f"has {VOCAB + 1} tokens but the model's vocab_size is {VOCAB}"):
        setup_pretraining(settings(text=text, vocab_file=big, max_seq_length=32))
    _, dataset, _ = setup_pretraining(settings(text=text, vocab_file=vocab, max_seq_length=32,
                                               max_predictions_per_seq=5))
    batch = next(iter(dataset))
    assert batch["input_ids"].shape == (4, 32) and batch["masked_lm_positions"].shape == (4, 5)
    assert int(tf.reduce_sum(batch["masked_lm_weights"])) > 0


@pytest.mark.slow
def test_mlm_probe_reports_the_unigram_baseline_and_warns_on_collapse(records_and_config, tmp_path,
                                                                        caplog):
    """The probe's numbers are recomputed here from the model's own logits; a model whose MLM
    output predicts one token everywhere is reported as collapsed, with the advice."""
    import logging

    from bert_tf.training.mlm_probe import HeldOutMlmProbe, take_batches
    from bert_tf.training.pretraining import PROBE_FILE, read_probe_history, run_pretraining
    _, _, config, text, vocab = records_and_config
    out = str(tmp_path / "out")
    settings = PretrainingConfig(config, None, out, total_steps=4, warmup_steps=1, batch_size=4,
                                 progress=False, text=text, vocab_file=vocab, max_seq_length=32,
                                 max_predictions_per_seq=5, eval_text=text, probe_every=2,
                                 probe_batches=3)
    run_pretraining(settings)
    history = read_probe_history(os.path.join(out, PROBE_FILE))
    assert [h["step"] for h in history] == [2, 4]
    trainer, _, _ = setup_pretraining(settings)
    trainer.restore()
    probe = next(c for c in trainer.callbacks if isinstance(c, HeldOutMlmProbe))
    result = probe.probe(trainer, 4)
    assert result.unigram_accuracy == pytest.approx(history[-1]["unigram_accuracy"])
    assert result.mlm_accuracy == pytest.approx(history[-1]["mlm_accuracy"])
    labels, correct = [], 0
    for batch in probe.batches:
        inputs, _ = trainer.split_batch({k: tf.constant(v) for k, v in batch.items()})
        predicted = np.argmax(trainer.model(inputs, training=False)["mlm_logits"].numpy(), -1)
        real = batch["masked_lm_weights"] > 0
        labels += batch["masked_lm_ids"][real].tolist()
        correct += int((predicted[real] == batch["masked_lm_ids"][real]).sum())
    assert result.masked_positions == len(labels)
    assert result.mlm_accuracy == pytest.approx(correct / len(labels))
    assert result.unigram_accuracy == pytest.approx(max(map(labels.count, set(labels))) / len(labels))

    # Collapse: an output bias that dwarfs the logits makes every prediction token 7.
    bias = trainer.model.masked_lm.output_bias
    bias.assign(np.where(np.arange(bias.shape[0]) == 7, 1e4, 0.0).astype("float32"))
    one_batch = take_batches(tf.data.Dataset.from_tensors(probe.batches[0]), 1)
    early = HeldOutMlmProbe(one_batch, every_steps=1, total_steps=100)
    caplog.clear()                 # the 4-step run above may have warned already
    with caplog.at_level(logging.WARNING, logger="bert_tf.training.mlm_probe"):
        early._run(trainer, 10)    # the plateau at step 10 of 100 is normal: no warning
    assert early.results[-1].collapsed and "collapsed" not in caplog.text
    collapsed = HeldOutMlmProbe(one_batch, every_steps=1, total_steps=4)
    with caplog.at_level(logging.WARNING, logger="bert_tf.training.mlm_probe"):
        collapsed._run(trainer, 4)
    assert collapsed.results[-1].top_prediction == 7
    assert collapsed.results[-1].top_prediction_share == 1.0 and collapsed.results[-1].collapsed
    assert "collapsed" in caplog.text and "Train longer (--steps)" in caplog.text


def test_default_schedule_scales_with_width_and_steps(records_and_config, tmp_path):
    from bert_tf import BertConfig
    from bert_tf.training.pretraining import default_learning_rate, resolve_schedule
    assert default_learning_rate(768) == pytest.approx(1e-4)
    assert default_learning_rate(256) == pytest.approx(1e-4 * 3 ** 1.5)
    assert default_learning_rate(128) == default_learning_rate(64) == 1e-3
    _, records, config, _, _ = records_and_config
    settings = PretrainingConfig(config, records, str(tmp_path / "out"), total_steps=250)
    resolved = resolve_schedule(settings)
    assert resolved.warmup_steps == 25 and resolved.learning_rate == 1e-3   # tiny config: narrow
    explicit = dataclasses.replace(settings, learning_rate=3e-4, warmup_steps=0)
    assert resolve_schedule(explicit) == explicit
    trainer, _, _ = setup_pretraining(dataclasses.replace(settings, total_steps=2, batch_size=4,
                                                          progress=False, probe_batches=0))
    assert trainer.optimizer.beta_2 == 0.98 and trainer.optimizer.epsilon == 1e-6
    with open(os.path.join(str(tmp_path / "out"), "run.json"), encoding="utf-8") as f:
        recorded = json.load(f)
    assert recorded["learning_rate"] == 1e-3 and recorded["warmup_steps"] == 1
    for bad in (dict(learning_rate=-1.0), dict(learning_rate=float("nan")), dict(adam_beta2=1.0)):
        with pytest.raises(TrainingError, match="learning-rate|beta2"):
            dataclasses.replace(settings, **bad).validate()


def _two_workers(command, out, extra_env=None):
    """Starts `command(out)` as workers 0 and 1 of a fresh loopback cluster."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            command(out), cwd=REPO, env=_env(TF_CONFIG=tf_config, **(extra_env or {})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def _finish(workers, timeout=600):
    outputs = []
    try:
        for w in workers:
            outputs.append(w.communicate(timeout=timeout))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    return [(w.returncode, stdout, stderr) for w, (stdout, stderr) in zip(workers, outputs)]


def _multi_worker_command(config, records, steps):
    def command(out):
        return [sys.executable, "-m", "bert_tf.commands.pretrain", "--config", config,
                "--data", records, "--out", out, "--steps", str(steps), "--batch-size", "8",
                "--warmup-steps", "5", "--learning-rate", "1e-3", "--checkpoint-every", "10",
                "--log-every", "10", "--strategy", "multi_worker", "--seed", "3",
                "--no-progress"]
    return command


def _wait_for_checkpoint(out, step, workers, deadline_s=600):
    deadline = time.time() + deadline_s
    while _latest_step(out) < step and all(w.poll() is None for w in workers) \
            and time.time() < deadline:
        time.sleep(0.05)
    assert _latest_step(out) >= step, [w.poll() for w in workers]


@pytest.mark.slow
def test_multi_worker_sigterm_to_one_worker_stops_all_and_resumes_exactly(records_and_config,
                                                                        tmp_path):
    """SIGTERM to the non-chief worker (a preempted host): both workers save the same step and
    stop (exit 143); the same command on both resumes to the weights of an uninterrupted run."""
    _, records, config, _, _ = records_and_config
    steps = 60
    command = _multi_worker_command(config, records, steps)
    reference, stopped = str(tmp_path / "reference"), str(tmp_path / "stopped")
    results = _finish(_two_workers(command, reference))
    assert [r[0] for r in results] == [0, 0], results[0][2][-3000:] + results[1][2][-3000:]

    workers = _two_workers(command, stopped)
    _wait_for_checkpoint(stopped, 10, workers)
    workers[1].send_signal(signal.SIGTERM)
    signalled = time.time()
    results = _finish(workers, timeout=300)
    assert time.time() - signalled < 120
    assert [r[0] for r in results] == [143, 143], results[0][2][-3000:] + results[1][2][-3000:]
    saved = _latest_step(stopped)
    assert 10 <= saved < steps
    assert all("stopped by SIGTERM; saved" in r[1] for r in results)
    assert "to another worker" in results[0][2]       # the chief stopped because worker 1 did
    assert not os.path.exists(os.path.join(stopped, "pretrained"))

    results = _finish(_two_workers(command, stopped))
    assert [r[0] for r in results] == [0, 0], results[0][2][-3000:] + results[1][2][-3000:]
    assert f"ckpt-{saved}" in results[0][2]   # "resumed from .../ckpt-N"
    a = _safetensors(os.path.join(reference, "pretrained"))
    b = _safetensors(os.path.join(stopped, "pretrained"))
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= 1e-6, f"resumed weights differ from the uninterrupted run's by {worst}"
    scratch = os.path.join(stopped, ".worker-scratch")
    assert not os.path.isdir(scratch) or not any(files for _, _, files in os.walk(scratch))


@pytest.mark.slow
def test_multi_worker_kill_9_of_one_worker_ends_the_other_with_a_clear_error(records_and_config,
                                                                           tmp_path):
    """kill -9 of worker 1 mid-run: worker 0 does not hang in a collective; it exits with one
    error naming the checkpoint to resume from, and the same command on both resumes from it."""
    _, records, config, _, _ = records_and_config
    steps = 400
    command = _multi_worker_command(config, records, steps)
    out = str(tmp_path / "out")
    workers = _two_workers(command, out)
    _wait_for_checkpoint(out, 10, workers)
    workers[1].send_signal(signal.SIGKILL)
    killed = time.time()
    results = _finish(workers, timeout=300)
    waited = time.time() - killed
    code, _, stderr = results[0]
    assert code == 2, stderr[-3000:]
    assert waited < 120, f"the surviving worker took {waited:.0f} s to notice"
    message = [line for line in stderr.splitlines() if "bert-tf pretrain: error:" in line]
    assert len(message) == 1 and "another worker stopped or cannot be reached" in message[0] \
        and "rerun the same command on every worker" in message[0], stderr[-3000:]
    saved = _latest_step(out)
    assert saved >= 10 and f"ckpt-{saved}" in message[0]

    # Resume on both, then stop them by SIGTERM after one more checkpoint: they resumed from the
    # saved step rather than from 0.
    workers = _two_workers(command, out)
    _wait_for_checkpoint(out, saved + 10, workers)
    workers[0].send_signal(signal.SIGTERM)
    results = _finish(workers, timeout=300)
    assert [r[0] for r in results] == [143, 143], results[0][2][-3000:] + results[1][2][-3000:]
    assert f"ckpt-{saved}" in results[0][2]   # "resumed from .../ckpt-N"


@pytest.mark.slow
def test_multi_worker_file_sharding_reads_each_file_on_one_worker(records_and_config, tmp_path):
    """--data-sharding files: worker i reads only files i, i+N, ... (each of the 2 record files
    on one worker), the run completes and its record pins the worker count."""
    _, records, config, _, _ = records_and_config

    def command(out):
        return _multi_worker_command(config, records, 6)(out) + ["--data-sharding", "files"]
    out = str(tmp_path / "out")
    results = _finish(_two_workers(command, out))
    assert [r[0] for r in results] == [0, 0], results[0][2][-3000:] + results[1][2][-3000:]
    read = []
    for _, _, stderr in results:
        lines = [line for line in stderr.splitlines() if "reads 1 of the 2 files:" in line]
        assert len(lines) == 1, stderr[-3000:]
        read.append(lines[0].rsplit(": ", 1)[1])
    assert sorted(read) == sorted(os.path.basename(f) for f in tf.io.gfile.glob(records))
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        defines = json.load(f)["record"]["defines"]
    assert defines["data_sharding"] == "files over 2 worker(s)"
    assert os.path.isdir(os.path.join(out, "pretrained"))
