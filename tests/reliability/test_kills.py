"""kill -9 over every writer (issue 17, item 7): each `bert-tf` command that writes is started in
a separate process on a tiny model/corpus and SIGKILLed mid-run (when its first checkpoint or its
hidden temporary appears); then nothing half-written may be visible at the final paths (the
output is absent, or complete and loadable), and the same command rerun completes (training
resumes from the checkpoint; exports publish a complete version and clean the dead writer's
temporaries).

Starting TensorFlow costs seconds a process, so one helper process imports bert_tf and TensorFlow
once and forks a child per command (before TensorFlow runs anything, as the CLI would start);
the children are what gets killed. Reruns run in this process."""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bert_tf.cli
from tests.harness import TINY_WORDS, write_tiny_classification, write_tiny_init
from tests.reliability.outcomes import SilentWrong

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Reads one JSON job a line ({"argv": [...], "log": path}), forks, prints the child's pid.
FORK_SERVER = r"""
import json, os, signal, sys
import bert_tf.cli, keras, tensorflow, tensorflow_text  # noqa: F401 (imported once, forked)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)            # the kernel reaps the children
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            code = bert_tf.cli.main(job["argv"])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
"""

FIGURES = {}   # writer -> what its loop did (printed at the end of the module)


class ForkServer:
    def __init__(self):
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        self.process = subprocess.Popen([sys.executable, "-c", FORK_SERVER], env=env, cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, argv, log) -> int:
        self.process.stdin.write(json.dumps({"argv": [str(a) for a in argv], "log": log}) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


def alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:     # a zombie is not running
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:                   # reaped between the two looks
        return False


def run_and_kill(server, argv, log, trigger, timeout=60.0) -> dict:
    """Starts `argv`, SIGKILLs it once `trigger()` is true; says whether a live process was killed
    and what the trigger saw."""
    pid = server.start(argv, log)
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if not alive(pid):
            with open(log) as f:
                return {"killed": False, "after_s": time.monotonic() - began, "log": f.read()}
        if trigger():
            break
        time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:                  # it ended on its own as the trigger fired
        with open(log) as f:
            return {"killed": False, "after_s": time.monotonic() - began, "log": f.read()}
    while alive(pid):
        time.sleep(0.005)
    return {"killed": True, "after_s": round(time.monotonic() - began, 2)}


def temp_in(directory):
    return lambda: any(n.startswith(".tmp-") for n in _listdir(directory))


def _listdir(directory):
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def cli(*argv):
    return bert_tf.cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    init = write_tiny_init(root / "init")
    train = write_tiny_classification(root / "train.csv", n=32)
    rng = np.random.default_rng(0)
    corpus = str(root / "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(40):   # documents of 4 sentences
            f.write("".join(" ".join(rng.choice(TINY_WORDS, 5)) + "\n" for _ in range(4)) + "\n")
    model = str(root / "model")
    server = ForkServer()     # (imports TensorFlow while this process fine-tunes)
    assert cli(*finetune_argv(init, train, model, epochs=1)) == 0
    yield {"root": root, "init": init, "train": train, "corpus": corpus, "model": model,
           "vocab": os.path.join(init, "vocab.txt"), "config": os.path.join(init, "config.json"),
           "server": server}
    server.close()
    if FIGURES:
        print("\nkill -9 loops: " + "; ".join(f"{w}: {d}" for w, d in FIGURES.items()))


def finetune_argv(init, train, out, epochs=2):
    return ["finetune", "classify", "--init", init, "--train", train, "--out", out,
            "--max-length", 16, "--batch-size", 8, "--epochs", epochs, "--strategy",
            "one_device", "--no-progress"]


# ---------------------------------------------------------------------- what "complete" means
def _absent(path, finished, writer="run"):
    """True when a killed writer left nothing at `path`; a finished one must have left it."""
    if os.path.exists(path):
        return False
    if finished:
        raise SilentWrong(f"{path}: missing after a finished {writer}")
    return True


def check_finetuned(out, finished):
    from bert_tf.tasks.model_dir import FinetunedModel, load_keras_model
    if not finished:   # task.json is written last: before it, any model.keras is whole
        if os.path.exists(os.path.join(out, "task.json")):
            raise SilentWrong(f"{out}: task.json of a run that was killed")
        if os.path.exists(os.path.join(out, "model.keras")):
            load_keras_model(os.path.join(out, "model.keras"))
        return "unfinished"
    loaded = FinetunedModel.load(out)
    return f"complete ({loaded.settings['task']})"


def check_pretrained(out, finished):
    from bert_tf.weights import read_checkpoint
    final = os.path.join(out, "pretrained")
    if _absent(final, finished):
        return "absent"
    read_checkpoint(final)
    return "complete"


def check_versions(base, finished):
    import tensorflow as tf
    versions = [n for n in _listdir(base) if n.isdigit()]
    for name in versions:
        if "serving_default" not in tf.saved_model.load(os.path.join(base, name)).signatures:
            raise SilentWrong(f"{base}/{name}: no serving_default")
    if finished and not versions:
        raise SilentWrong(f"{base}: no version after a finished export")
    return f"{len(versions)} complete version(s)"


def check_tflite(path, finished):
    import tensorflow as tf
    if _absent(path, finished, "export"):
        return "absent"
    tf.lite.Interpreter(model_path=path).allocate_tensors()
    return "complete"


def check_converted(out, finished):
    from bert_tf.weights import read_checkpoint
    if _absent(out, finished, "convert"):
        return "absent"
    tensors = read_checkpoint(out)
    with open(os.path.join(out, "vocab.txt"), encoding="utf-8") as f:
        if len(f.read().split()) != 21:
            raise SilentWrong(f"{out}/vocab.txt: not the source's 21 tokens")
    return f"complete ({len(tensors.tensors) if hasattr(tensors, 'tensors') else 'read'})"


def check_records(out, finished):
    import tensorflow as tf
    if _absent(out, finished):
        return "absent"
    shards = sorted(glob.glob(os.path.join(out, "*.tfrecord*")))
    if not shards:
        raise SilentWrong(f"{out}: an output directory without records")
    count = sum(1 for _ in tf.data.TFRecordDataset(shards))   # a torn record is DataLossError
    return f"complete ({len(shards)} shards, {count} records)"


def check_vocab(path, finished):
    if _absent(path, finished):
        return "absent"
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split("\n")[:-1]
    if len(tokens) != 40:
        raise SilentWrong(f"{path}: {len(tokens)} tokens, not the 40 asked for")
    return "complete (40 tokens)"


# (writer, argv(world, out), trigger(out) for the kill, where the final output is, its check,
#  "resumes" when the rerun must continue from a checkpoint)
WRITERS = {
    "finetune": (lambda w, out: finetune_argv(w["init"], w["train"], out),
                 lambda out: lambda: os.path.exists(os.path.join(out, "checkpoints", "checkpoint")),
                 lambda out: out, check_finetuned, True),
    "distill": (lambda w, out: ["distill", "--teacher", w["model"], "--student-layers", 1,
                                "--train", w["train"], "--out", out, "--batch-size", 8,
                                "--epochs", 2, "--strategy", "one_device", "--no-progress"],
                lambda out: lambda: os.path.exists(os.path.join(out, "checkpoints", "checkpoint")),
                lambda out: out, check_finetuned, True),
    "pretrain": (lambda w, out: ["pretrain", "--config", w["config"], "--text", w["corpus"],
                                 "--vocab", w["vocab"], "--out", out, "--steps", 4,
                                 "--batch-size", 4, "--max-seq-length", 16,
                                 "--max-predictions-per-seq", 3, "--warmup-steps", 0,
                                 "--checkpoint-every", 2, "--log-every", 2, "--probe-batches", 0, "--strategy",
                                 "one_device", "--no-progress"],
                 lambda out: lambda: os.path.exists(os.path.join(out, "checkpoints", "checkpoint")),
                 lambda out: out, check_pretrained, True),
    "export saved-model": (lambda w, out: ["export", "saved-model", "--model", w["model"],
                                           "--out", out],
                           lambda out: temp_in(out), lambda out: out, check_versions, False),
    "export tflite": (lambda w, out: ["export", "tflite", "--model", w["model"], "--out",
                                      os.path.join(out, "m.tflite"), "--no-verify"],
                      lambda out: temp_in(out), lambda out: os.path.join(out, "m.tflite"),
                      check_tflite, False),
    "convert": (lambda w, out: ["convert", "--input", w["init"], "--output",
                                os.path.join(out, "hf"), "--format", "huggingface"],
                lambda out: temp_in(out), lambda out: os.path.join(out, "hf"), check_converted,
                False),
    "create-pretraining-data": (lambda w, out: ["create-pretraining-data", "--input",
                                                w["corpus"], "--vocab", w["vocab"], "--output",
                                                os.path.join(out, "records"), "--max-seq-length",
                                                16, "--max-predictions-per-seq", 3,
                                                "--dupe-factor", 1, "--num-shards", 2,
                                                "--no-progress"],
                                lambda out: temp_in(out), lambda out: os.path.join(out, "records"),
                                check_records, False),
    "vocab": (lambda w, out: ["vocab", "--input", w["corpus"], "--size", 40, "--output",
                              os.path.join(out, "vocab.txt"), "--min-count", 1,
                              "--min-char-count", 1],
              lambda out: temp_in(out), lambda out: os.path.join(out, "vocab.txt"), check_vocab,
              False),
}


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(WRITERS), ids=[f"OK-kill-9 {w}" for w in WRITERS])
def test_kill_9_leaves_nothing_half_written_and_the_rerun_completes(world, writer, caplog):
    argv_of, trigger_of, final_of, check, resumes = WRITERS[writer]
    out = str(world["root"] / writer.replace(" ", "-"))
    argv = argv_of(world, out)
    figures = {"kills": 0}
    # Kill at the trigger; a writer that finished before its trigger showed is retried with a
    # kill after half the time it took (at most twice).
    delay = None
    for attempt in range(3):
        trigger = trigger_of(out)
        if delay is not None:
            began = time.monotonic()
            trigger = (lambda b, d: lambda: time.monotonic() - b >= d)(began, delay)
        result = run_and_kill(world["server"], argv, str(world["root"] / f"{writer}-{attempt}.log"),
                              trigger)
        if result["killed"]:
            figures["kills"] += 1
            figures["killed after s"] = result["after_s"]
            figures["after kill"] = check(final_of(out), finished=False)
            break
        assert "error" not in result["log"].lower(), result["log"]
        delay = result["after_s"] / 2
        _remove(out)
    assert figures["kills"] == 1, f"{writer}: every run finished before it could be killed"
    with caplog.at_level(logging.INFO):
        assert cli(*argv) == 0
    if resumes:
        assert "resumed from" in caplog.text, f"{writer}: the rerun did not resume"
        figures["rerun"] = "resumed"
    leftovers = {n for n in _listdir(os.path.dirname(final_of(out))) + _listdir(out)
                 if n.startswith(".tmp-")}
    assert not leftovers, f"{writer}: the dead writer's temporaries stay: {leftovers}"
    figures["after rerun"] = check(final_of(out), finished=True)
    FIGURES[writer] = figures


def _remove(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)
