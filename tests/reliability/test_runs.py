"""Runs are immutable unless resumed as they were (issue 17, item 2): `bert-tf finetune` and
`bert-tf pretrain` record what defines a run in OUT/run.json; a rerun with any difference is
refused before any work (CLEAR: exit 2, a message naming each difference old → new and the way
forward, OUT untouched); an identical rerun resumes, or reports a complete run and rewrites
nothing (OK); `--overwrite` starts afresh only over a directory that holds nothing but a run.

Table-driven: each case is (name, how to rerun, expected class, words the message must hold)."""

import json
import os
import shutil

import pytest

import bert_tf.cli
from bert_tf.config import BertConfig
from bert_tf.training import run_record
from tests.harness import TINY_WORDS, write_tiny_classification, write_tiny_init
from tests.reliability.cases import require_words

CLEAR, OK = "CLEAR", "OK"


def cli(*argv):
    return bert_tf.cli.main([str(a) for a in argv])


def snapshot(folder) -> dict:
    """{relative path: (size, mtime_ns)} of every file under `folder`: 'nothing rewritten'."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


def copy_run(source, target):
    shutil.copytree(source, target)
    return str(target)


# ---------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """A complete tiny classification run (16 rows, batch 8: 2 steps) and the files it used."""
    root = tmp_path_factory.mktemp("runs")
    files = {"init": write_tiny_init(root / "init"),
             "init2": write_tiny_init(root / "init2", seed=1),
             "train": write_tiny_classification(root / "train.csv"),
             "train_other": write_tiny_classification(root / "train_other.csv", seed=5),
             "train_3labels": write_tiny_classification(root / "train3.csv",
                                                        labels=("neg", "pos", "mixed")),
             "dev": write_tiny_classification(root / "dev.jsonl", n=8, seed=1),
             "dev_other": write_tiny_classification(root / "dev_other.jsonl", n=8, seed=2)}
    with open(files["init"] + "/vocab.txt", encoding="utf-8") as f:
        tokens = f.read().split()
    files["vocab_reordered"] = str(root / "vocab_reordered.txt")
    with open(files["vocab_reordered"], "w", encoding="utf-8") as f:
        f.write("\n".join(tokens[:5] + tokens[5:][::-1]) + "\n")
    out = str(root / "base")
    assert cli(*finetune_argv(files, out)) == 0
    return files, out


def finetune_argv(files, out, *extra, train="train", dev="dev", task="classify"):
    argv = ["finetune", task, "--init", files["init"], "--train", files[train], "--out", out,
            "--max-length", 16, "--batch-size", 8, "--epochs", 1, "--strategy", "one_device",
            "--no-progress"]
    if dev:
        argv += ["--eval", files[dev]]
    return argv + list(extra)


# (name, rerun arguments (extra flags, keyword options of finetune_argv), words in the error)
FINETUNE_DIFFERENCES = [
    ("learning rate", (["--learning-rate", 1e-3], {}), ["--learning-rate: 5e-05 → 0.001"]),
    ("epochs", (["--epochs", 2], {}), ["--epochs: 1.0 → 2.0"]),
    ("batch size", (["--batch-size", 4], {}), ["--batch-size: 8 → 4"]),
    ("max length", (["--max-length", 24], {}), ["--max-length: 16 → 24"]),
    ("seed", (["--seed", 1], {}), ["--seed: 0 → 1"]),
    ("dropout seed", (["--dropout-seed", 3], {}), ["--dropout-seed: null → 3"]),
    ("warmup", (["--warmup", 0.2], {}), ["--warmup: 0.1 → 0.2"]),
    ("weight decay", (["--weight-decay", 0], {}), ["--weight-decay: 0.01 → 0.0"]),
    ("freeze encoder", (["--freeze-encoder"], {}), ["--freeze-encoder: false → true"]),
    ("eval every", (["--eval-every", 1], {}), ["--eval-every: null → 1"]),
    ("cased", (["--cased"], {}), ["--cased (lowercase): true → false"]),
    ("mixed precision", (["--mixed-precision", "bf16"], {}),
     ['--mixed-precision: null → "mixed_bfloat16"']),
    ("other init", (["--init", "INIT2"], {}), ["--init: ", "init2"]),
    ("other vocab content", (["--vocab", "VOCAB_REORDERED"], {}), ["--vocab (content sha256)"]),
    ("train content", ([], {"train": "train_other"}), ["--train (content sha256)"]),
    ("train labels", ([], {"train": "train_3labels"}),
     ["--train (content sha256)", 'labels (from --train): ["neg", "pos"] → ["mixed", "neg", '
                                  '"pos"]']),
    ("eval content", ([], {"dev": "dev_other"}), ["--eval (content sha256)"]),
    ("eval dropped", ([], {"dev": None}), ["--eval (content sha256): ", "→ null"]),
    ("other task", ([], {"task": "regress"}), ['task: "classify" → "regress"']),
    ("two at once", (["--learning-rate", 1e-3, "--seed", 2], {}),
     ["--learning-rate: 5e-05 → 0.001", "--seed: 0 → 2"]),
]


def _refused_untouched(capsys, target, argv, words, one_line=False):
    """The rerun exits 2 with an error holding `words` (on one line if `one_line`, never a
    traceback) and leaves OUT byte for byte as it was."""
    before = snapshot(target)
    capsys.readouterr()
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and (err.count("\n") == 1 or not one_line), err
    require_words(err, words)
    assert snapshot(target) == before


@pytest.mark.slow
@pytest.mark.parametrize("name, rerun, words", FINETUNE_DIFFERENCES,
                         ids=["CLEAR-" + c[0] for c in FINETUNE_DIFFERENCES])
def test_finetune_rerun_with_a_difference_is_refused(finetuned, capsys, name, rerun, words):
    files, out = finetuned
    extra, options = rerun
    extra = [files["init2"] if a == "INIT2" else files["vocab_reordered"]
             if a == "VOCAB_REORDERED" else a for a in extra]
    _refused_untouched(capsys, out, finetune_argv(files, out, *extra, **options),
                       words + ["Differences (old → new)", "--overwrite", "new --out"],
                       one_line=True)


@pytest.mark.expect("OK")
def test_finetune_identical_rerun_is_complete_and_rewrites_nothing(finetuned, capsys, caplog):
    files, out = finetuned
    before = snapshot(out)
    with open(os.path.join(out, "task.json")) as f:
        task = json.load(f)
    capsys.readouterr()
    # --strategy and the progress bar are not part of the record: still the same run.
    argv = [a for a in finetune_argv(files, out) if a != "--no-progress"]
    with caplog.at_level("INFO"):
        assert cli(*argv) == 0
    assert "already complete" in caplog.text
    printed = json.loads(capsys.readouterr().out)
    assert printed["steps"] == task["steps"] == 2 and printed["best_step"] == task["best_step"]
    assert snapshot(out) == before


@pytest.mark.expect("OK")
def test_finetune_record_format(finetuned):
    files, out = finetuned
    with open(os.path.join(out, "run.json")) as f:
        saved = json.load(f)
    record = saved["record"]
    assert record["version"] == 1 and record["kind"] == "finetune"
    defines = record["defines"]
    assert defines["train_sha256"] == run_record.file_sha256(files["train"])
    assert defines["labels"] == ["neg", "pos"] and defines["learning_rate"] == 5e-5
    assert record["files"]["train"] == os.path.abspath(files["train"])
    assert saved["settings"]["strategy"] == "one_device"


@pytest.mark.expect("OK")
def test_finetune_identical_rerun_of_an_unfinished_run_resumes(finetuned, tmp_path, caplog):
    files, out = finetuned
    unfinished = copy_run(out, tmp_path / "unfinished")
    os.remove(os.path.join(unfinished, "task.json"))   # as a run stopped before its end
    with caplog.at_level("INFO"):
        assert cli(*finetune_argv(files, unfinished)) == 0
    assert "resumed from" in caplog.text and "ckpt-2" in caplog.text
    with open(os.path.join(unfinished, "task.json")) as f:
        assert json.load(f)["steps"] == 2


@pytest.mark.slow
@pytest.mark.expect("OK")
def test_finetune_overwrite_starts_afresh(finetuned, tmp_path):
    files, out = finetuned
    target = copy_run(out, tmp_path / "again")
    assert cli(*finetune_argv(files, target, "--learning-rate", 1e-3, "--overwrite")) == 0
    with open(os.path.join(target, "run.json")) as f:
        assert json.load(f)["record"]["defines"]["learning_rate"] == 1e-3
    with open(os.path.join(target, "checkpoints", "checkpoint")) as f:
        assert "ckpt-2" in f.read()


def _add_notes(path):
    with open(os.path.join(path, "notes.txt"), "w") as f:
        f.write("mine")


def _drop_record(path):
    os.remove(os.path.join(path, "run.json"))


def _garbage_record(path):
    with open(os.path.join(path, "run.json"), "w") as f:
        f.write("{not json")


def _old_style_record(path):   # what pretrain wrote before the record existed
    with open(os.path.join(path, "run.json"), "w") as f:
        json.dump({"seed": 0}, f)


# (name, damage done to a copy of the run, extra flags, words in the error)
FINETUNE_OUTPUT_STATES = [
    ("overwrite over foreign files", _add_notes, ["--overwrite"],
     ["--overwrite", "notes.txt", "not deleting"]),
    ("no record (older bert_tf)", _drop_record, [], ["no run record", "--overwrite"]),
    ("record without its key", _old_style_record, [], ["no run record", "--overwrite"]),
    ("unreadable record", _garbage_record, [], ["run.json: unreadable run record", "--overwrite"]),
]


@pytest.mark.parametrize("name, damage, extra, words", FINETUNE_OUTPUT_STATES,
                         ids=["CLEAR-" + c[0] for c in FINETUNE_OUTPUT_STATES])
def test_finetune_output_that_cannot_be_verified_is_refused(finetuned, tmp_path, capsys, name,
                                                            damage, extra, words):
    files, out = finetuned
    target = copy_run(out, tmp_path / "copy")
    damage(target)
    _refused_untouched(capsys, target, finetune_argv(files, target, *extra), words)


# ---------------------------------------------------------------------- the record itself
def _record(**defines):
    return run_record.make_record("finetune", {"a": 1, **defines}, {})


def _inspect(out, record=None, overwrite=False):
    return run_record.inspect_output(str(out), record or _record(), ("run.json", "model.keras"),
                                     overwrite)[0]


def _write(out, record):
    os.makedirs(out, exist_ok=True)
    run_record.write_run_file(str(out), record)


# (name, set-up of OUT, rerun record, overwrite, expected: a state (OK) or words (CLEAR))
INSPECT_CASES = [
    ("missing directory", lambda out: None, None, False, "new"),
    ("empty directory", lambda out: os.makedirs(out), None, False, "new"),
    ("only foreign files", lambda out: (os.makedirs(out), _add_notes(out)), None, False, "new"),
    ("same record", lambda out: _write(out, _record()), None, False, "resume"),
    ("overwrite a run", lambda out: _write(out, _record()), _record(a=2), True, "overwrite"),
    ("overwrite nothing", lambda out: os.makedirs(out), None, True, "new"),
    ("other value", lambda out: _write(out, _record()), _record(a=2), False, ["a: 1 → 2"]),
    ("new key", lambda out: _write(out, _record()), _record(b=3), False, ["b: (absent) → 3"]),
    ("other kind", lambda out: _write(out, run_record.make_record("pretrain", {"a": 1}, {})),
     None, False, ["holds a pretrain run, not a finetune run"]),
    ("other version", lambda out: _write(out, {**_record(), "version": 99}), None, False,
     ["record version 99"]),
    ("out is a file", lambda out: open(out, "w").close(), None, False,
     ["exists and is not a directory"]),
    ("overwrite with foreign", lambda out: (_write(out, _record()), _add_notes(out)), None, True,
     ["notes.txt"]),
]


@pytest.mark.parametrize("name, setup, record, overwrite, expected", INSPECT_CASES,
                         ids=[("OK-" if isinstance(c[-1], str) else "CLEAR-") + c[0]
                              for c in INSPECT_CASES])
def test_inspect_output_cases(tmp_path, name, setup, record, overwrite, expected):
    out = str(tmp_path / "out")
    setup(out)
    if isinstance(expected, str):
        assert _inspect(out, record, overwrite) == expected
        return
    with pytest.raises(run_record.RunRecordError) as error:
        _inspect(out, record, overwrite)
    require_words(str(error.value), expected)


@pytest.mark.expect("OK")
def test_clear_run_deletes_only_the_runs_files(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "ckpt-1.index").write_text("x")
    (out / "run.json").write_text("{}")
    (out / ".tmp-abc").write_text("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    os.symlink(elsewhere, out / "tensorboard")       # a link is removed, never followed
    run_record.clear_run(str(out), ("run.json", "checkpoints", "tensorboard"))
    assert os.listdir(out) == [] and (elsewhere / "keep.txt").read_text() == "keep"


# ---------------------------------------------------------------------- pre-training
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A complete 2-step `bert-tf pretrain --text` run on a tiny corpus."""
    root = tmp_path_factory.mktemp("pretrain")
    init = write_tiny_init(root / "init")
    files = {"vocab": os.path.join(init, "vocab.txt"), "config": os.path.join(init, "config.json")}
    wide = BertConfig.from_json_file(files["config"]).to_dict()
    wide["hidden_size"] = 64
    files["config_wide"] = str(root / "wide.json")
    BertConfig.from_dict(wide).to_json_file(files["config_wide"])
    for name, seed in (("text", 0), ("text_other", 1)):
        files[name] = str(root / f"{name}.txt")
        rng = __import__("numpy").random.default_rng(seed)
        with open(files[name], "w", encoding="utf-8") as f:
            for _ in range(6):    # documents of 3 sentences
                f.write("".join(" ".join(rng.choice(TINY_WORDS, 4)) + "\n" for _ in range(3)))
                f.write("\n")
    out = str(root / "out")
    assert cli(*pretrain_argv(files, out)) == 0
    return files, out


def pretrain_argv(files, out, *extra, text="text", config="config"):
    return ["pretrain", "--config", files[config], "--text", files[text], "--vocab",
            files["vocab"], "--out", out, "--steps", 2, "--batch-size", 4, "--max-seq-length",
            16, "--max-predictions-per-seq", 3, "--warmup-steps", 0, "--log-every", 1,
            "--checkpoint-every", 1, "--strategy", "one_device", "--no-progress", *extra]


PRETRAIN_DIFFERENCES = [
    ("steps", (["--steps", 3], {}), ["--steps: 2 → 3"]),
    # (the default for a 32-wide model is the 1e-3 cap: the record holds the resolved rate)
    ("learning rate", (["--learning-rate", 5e-4], {}), ["--learning-rate: 0.001 → 0.0005"]),
    ("adam beta2", (["--adam-beta2", 0.999], {}), ["--adam-beta2: 0.98 → 0.999"]),
    ("seed", (["--seed", 1], {}), ["--seed: 12345 → 1"]),
    ("attention init", (["--attention-init", "neighbours"], {}),
     ['--attention-init: "random" → "neighbours"']),
    ("batch size", (["--batch-size", 2], {}), ["--batch-size: 4 → 2"]),
    ("max seq length", (["--max-seq-length", 24], {}), ["--max-seq-length: 16 → 24"]),
    ("whole word mask", (["--whole-word-mask"], {}), ["--whole-word-mask: false → true"]),
    ("optimizer", (["--optimizer", "lamb"], {}), ['--optimizer: "adamw" → "lamb"']),
    ("text content", ([], {"text": "text_other"}), ["--text files (content sha256)"]),
    ("model config", ([], {"config": "config_wide"}), ["--config (model config).hidden_size: 32 → 64"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, rerun, words", PRETRAIN_DIFFERENCES,
                         ids=["CLEAR-" + c[0] for c in PRETRAIN_DIFFERENCES])
def test_pretrain_rerun_with_a_difference_is_refused(pretrained, capsys, name, rerun, words):
    files, out = pretrained
    extra, options = rerun
    _refused_untouched(capsys, out, pretrain_argv(files, out, *extra, **options),
                       words + ["Differences (old → new)", "--overwrite"], one_line=True)


@pytest.mark.expect("OK")
def test_pretrain_identical_rerun_is_complete_and_rewrites_nothing(pretrained, capsys, caplog):
    files, out = pretrained
    before = snapshot(out)
    with open(os.path.join(out, "run.json")) as f:
        saved = json.load(f)
    assert saved["complete"] is True and saved["record"]["kind"] == "pretrain"
    assert saved["record"]["defines"]["text_sha256"] == [run_record.file_sha256(files["text"])]
    with caplog.at_level("INFO"):
        assert cli(*pretrain_argv(files, out, "--log-every", 5)) == 0   # logging: not compared
    assert "already complete" in caplog.text and "step 2/2" in capsys.readouterr().out
    assert snapshot(out) == before


def _old_pretrain_run_file(path):
    """run.json as releases before the record wrote it: the settings alone."""
    with open(os.path.join(path, "run.json")) as f:
        saved = json.load(f)
    del saved["record"], saved["complete"]
    with open(os.path.join(path, "run.json"), "w") as f:
        json.dump(saved, f)


# (name, change to a copy of the run, extra flags, words in the error). `--overwrite` that does
# delete and retrain is covered by the fine-tuning case (the same `run_record.clear_run`).
PRETRAIN_OUTPUT_STATES = [
    ("no record (older bert_tf)", _old_pretrain_run_file, [], ["no run record", "--overwrite"]),
    ("overwrite over foreign files", _add_notes, ["--overwrite"], ["notes.txt", "not deleting"]),
    ("damaged checkpoint state", lambda path: open(
        os.path.join(path, "checkpoints", "checkpoint"), "w").write("garbage {{{"), [],
     ["checkpoints/checkpoint: damaged checkpoint state file", "not restarting from step 0"]),
]


@pytest.mark.parametrize("name, change, extra, words", PRETRAIN_OUTPUT_STATES,
                         ids=["CLEAR-" + c[0] for c in PRETRAIN_OUTPUT_STATES])
def test_pretrain_output_that_cannot_be_verified_is_refused(pretrained, tmp_path, capsys, name,
                                                            change, extra, words):
    files, out = pretrained
    target = copy_run(out, tmp_path / "copy")
    change(target)
    if name == "damaged checkpoint state":   # not complete: the rerun must read checkpoints
        _set_incomplete(target)
    _refused_untouched(capsys, target, pretrain_argv(files, target, *extra), words)


def _set_incomplete(path):
    with open(os.path.join(path, "run.json")) as f:
        saved = json.load(f)
    saved["complete"] = False
    with open(os.path.join(path, "run.json"), "w") as f:
        json.dump(saved, f)
