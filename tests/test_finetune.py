"""`bert-tf finetune / evaluate / predict` end to end on small real-data subsets with a tiny
encoder (real vocabulary, random weights: these tests check the machinery, not the accuracy; the
accuracy comparison against PyTorch is tools/compare_finetune.py)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

import bert_tf.cli
from bert_tf.config import BertConfig
from bert_tf.data import classification, conll, datasets
from bert_tf.models import BertEncoder

COMMANDS = ("finetune", "evaluate", "predict")


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    monkeypatch.setattr(bert_tf.cli, "COMMAND_MODULES",
                        tuple(dict.fromkeys(bert_tf.cli.COMMAND_MODULES + COMMANDS)))


@pytest.fixture(scope="module")
def tiny_init(tmp_path_factory, minilm_vocab):
    """A tiny encoder in Hugging Face layout with the real bert-base-uncased vocab next to it."""
    folder = str(tmp_path_factory.mktemp("tiny_init"))
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    keras.utils.set_random_seed(0)
    BertEncoder(config).save_pretrained(folder)
    shutil.copy(minilm_vocab, os.path.join(folder, "vocab.txt"))
    return folder


def cli(*argv):
    return bert_tf.cli.main([str(a) for a in argv])


def common(init, out, max_length=32):
    return ["--init", init, "--out", out, "--max-length", max_length, "--batch-size", 8,
            "--no-progress", "--strategy", "one_device"]


def sentiment_files(folder, n_train=48, n_dev=24):
    train = os.path.join(folder, "train.csv")
    dev = os.path.join(folder, "dev.jsonl")
    names = datasets.ROTTEN_TOMATOES_LABELS
    classification.write_classification(
        train, [(t, names[y]) for t, y in datasets.rotten_tomatoes("train")[:n_train]])
    classification.write_classification(
        dev, [(t, names[y]) for t, y in datasets.rotten_tomatoes("dev")[:n_dev]])
    return train, dev


@pytest.mark.slow
def test_classify_writes_the_documented_output_dir(tmp_path, tiny_init, capsys, monkeypatch):
    train, dev = sentiment_files(tmp_path)
    out = tmp_path / "out"
    assert cli("finetune", "classify", *common(tiny_init, out), "--train", train, "--eval", dev,
               "--epochs", 1, "--eval-every", 3, "--learning-rate", 1e-3) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    task = json.loads((out / "task.json").read_text())
    assert task["task"] == "classify" and task["max_length"] == 32 and task["lowercase"] is True
    assert json.loads((out / "labels.json").read_text()) == ["fresh", "rotten"]
    assert (out / "vocab.txt").read_text().split("\n")[:1] == ["[PAD]"]
    history = json.loads((out / "eval_history.json").read_text())
    assert [step for step, _ in history["history"]] == [3, 6]  # 48 examples / 8 = 6 steps/epoch
    best_step, best = history["best"]
    assert best["accuracy"] == max(m["accuracy"] for _, m in history["history"])
    assert task["best_step"] == best_step == summary["best_step"] and task["metrics"] == best
    assert os.listdir(out / "tensorboard") and os.listdir(out / "checkpoints")

    # model.keras loads with plain Keras and is the best checkpoint: `evaluate` reproduces its score.
    model = keras.saving.load_model(out / "model.keras")
    assert type(model).__name__ == "BertClassifier" and model.num_classes == 2
    assert cli("evaluate", "--model", out, "--data", dev) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(best)

    # predict: a file, and lines on stdin, give one JSON object per input with valid labels.
    predictions = tmp_path / "pred.jsonl"
    assert cli("predict", "--model", out, "--data", dev, "--output", predictions) == 0
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 24 and all(r["label"] in ("fresh", "rotten") for r in rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    capsys.readouterr()
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("a joyless, tedious film\n\nsheer delight\n"))
    assert cli("predict", "--model", out) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["a joyless, tedious film", "sheer delight"]


def test_freeze_encoder_trains_only_the_head(tmp_path, tiny_init):
    from bert_tf.models.pretrained import load_encoder
    train, _ = sentiment_files(tmp_path, 16, 8)
    out = tmp_path / "frozen"
    assert cli("finetune", "classify", *common(tiny_init, out), "--train", train,
               "--epochs", 1, "--freeze-encoder", "--learning-rate", 1e-2) == 0
    # without --eval the final model is kept
    assert not (out / "eval_history.json").exists() and (out / "model.keras").exists()
    trained = keras.saving.load_model(out / "model.keras")
    initial = load_encoder(tiny_init)
    for a, b in zip(initial.weights, trained.encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    head = trained.get_layer("classifier").kernel.numpy()
    keras.utils.set_random_seed(0)  # the same seed initializes the same head...
    from bert_tf.models import BertClassifier
    fresh = BertClassifier(load_encoder(tiny_init), 2).get_layer("classifier").kernel.numpy()
    assert not np.allclose(head, fresh)  # ...which training moved


@pytest.mark.slow
def test_dropout_seed_changes_only_the_dropout_masks(tmp_path, tiny_init, capsys):
    """--dropout-seed reseeds dropout alone: repeated, a run is the same; another dropout seed
    trains other weights from the same head and batches (the data order and head come from
    --seed, checked through `reseed_dropout` and `train_dataset` in their own tests)."""
    train, _ = sentiment_files(tmp_path, 16, 8)

    def run(name, *extra):
        out = tmp_path / name
        assert cli("finetune", "classify", *common(tiny_init, out), "--train", train,
                   "--epochs", 1, "--learning-rate", 1e-3, "--seed", 3, *extra) == 0
        task = json.loads((out / "task.json").read_text())
        model = keras.saving.load_model(out / "model.keras")
        return task["hyperparameters"]["dropout_seed"], [w.numpy() for w in model.weights]

    for flag in ("--dropout-seed", "--seed"):      # one line naming the flag, not numpy's words
        assert cli("finetune", "classify", *common(tiny_init, tmp_path / "bad"), "--train", train,
                   flag, -1) == 2
        assert f"{flag} must be" in capsys.readouterr().err
    seed_a, a = run("a", "--dropout-seed", 1)
    _, again = run("again", "--dropout-seed", 1)
    _, b = run("b", "--dropout-seed", 2)
    assert seed_a == 1
    for x, y in zip(a, again):
        np.testing.assert_array_equal(x, y)
    assert any(not np.allclose(x, y) for x, y in zip(a, b))


@pytest.mark.slow
def test_xla_fine_tuning_matches_the_default_path(tmp_path, tiny_init):
    """`--xla` compiles the same computation: with the same seed (same batches and, HashDropout
    being counter-based, the same dropout masks) the eval history and the trained model agree with
    the padded run (`--no-pack`: XLA never packs) up to float rounding, and task.json records the
    setting."""
    from bert_tf.tasks import FinetuneOptions, finetune
    train, dev = sentiment_files(tmp_path, 32, 16)
    runs = {}
    for xla in (False, True):
        out = tmp_path / f"xla_{xla}"
        runs[xla] = finetune(FinetuneOptions("classify", tiny_init, str(train), str(out), eval=dev,
                                             max_length=24, epochs=1, batch_size=8,
                                             learning_rate=1e-3, eval_every=2,
                                             strategy="one_device", progress=False, xla=xla,
                                             pack=False))
        assert json.loads((out / "task.json").read_text())["hyperparameters"]["xla"] is xla
    assert [s for s, _ in runs[True].history] == [s for s, _ in runs[False].history] == [2, 4]
    for (_, a), (_, b) in zip(runs[False].history, runs[True].history):
        assert a["accuracy"] == b["accuracy"]
    default, compiled = (keras.saving.load_model(tmp_path / f"xla_{x}" / "model.keras")
                         for x in (False, True))
    for a, b in zip(default.weights, compiled.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.path)
    # ...which training moved away from the checkpoint by far more than that tolerance
    from bert_tf.models.pretrained import load_encoder
    initial = load_encoder(tiny_init).weights
    moved = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in
                zip(initial, compiled.encoder.weights))
    assert moved > 1e-3


@pytest.mark.parametrize("task", ["classify", "ner"])
def test_packed_training_equals_padded_training(tmp_path, minilm_vocab, monkeypatch, task):
    """Training on each batch's real tokens (the default) is the padded computation on fewer rows:
    without dropout (whose masks hash the positions of the tensors it sees) both runs end with
    the same weights and evaluations, up to float rounding; the packed forward really ran."""
    from bert_tf.tasks import FinetuneOptions, finetune, finetuning
    init = str(tmp_path / "init")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    keras.utils.set_random_seed(0)
    BertEncoder(config).save_pretrained(init)
    shutil.copy(minilm_vocab, os.path.join(init, "vocab.txt"))
    if task == "classify":
        train, dev = sentiment_files(tmp_path, 32, 16)
    else:
        train, dev = tmp_path / "train.conll", tmp_path / "dev.conll"
        conll.write_conll(train, datasets.wnut_ner("train")[:32])
        conll.write_conll(dev, datasets.wnut_ner("dev")[:16])
    calls = []
    packed_forward = finetuning.packed_forward
    monkeypatch.setattr(finetuning, "packed_forward",
                        lambda *a: calls.append(1) or packed_forward(*a))
    runs = {}
    for pack in (True, False):
        calls.clear()
        out = tmp_path / f"pack_{pack}"
        runs[pack] = finetune(FinetuneOptions(task, init, str(train), str(out), eval=str(dev),
                                              max_length=48, epochs=1, batch_size=8,
                                              learning_rate=1e-3, eval_every=2,
                                              strategy="one_device", progress=False, pack=pack))
        assert json.loads((out / "run.json").read_text())["record"]["defines"]["pack"] is pack
        assert bool(calls) is pack   # traced once per step function when packing, never otherwise
    metric = "accuracy" if task == "classify" else "f1"
    assert [s for s, _ in runs[True].history] == [s for s, _ in runs[False].history]
    assert len(runs[True].history) >= 2
    for (_, a), (_, b) in zip(runs[False].history, runs[True].history):
        assert abs(a[metric] - b[metric]) < 1e-6
    packed, padded = (keras.saving.load_model(tmp_path / f"pack_{p}" / "model.keras")
                      for p in (True, False))
    for a, b in zip(packed.weights, padded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.path)
    from bert_tf.models.pretrained import load_encoder
    moved = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in
                zip(load_encoder(init).weights, packed.encoder.weights))
    assert moved > 1e-3


def test_classifier_learns_a_learnable_task(tmp_path, tiny_init):
    """The loop really optimizes: a word-presence task goes to (near) perfect dev accuracy.
    (At 3e-3 this tiny random encoder often collapsed to the majority class: for 2 of seeds 0-11
    with Keras' Philox dropout, 6 of 12 with `HashDropout`; at 1e-3 it learned for all of seeds
    0-7 with `HashDropout`.)"""
    from bert_tf.tasks import FinetuneOptions, finetune
    rng = np.random.default_rng(0)
    filler = "the a film plot actor scene story music long short".split()

    def rows(n):
        out = []
        for _ in range(n):
            label = ["bad", "good"][int(rng.integers(2))]
            words = list(rng.choice(filler, 5)) + [label]
            rng.shuffle(words)
            out.append((" ".join(words), label))
        return out
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    classification.write_classification(train, rows(64))
    classification.write_classification(dev, rows(32))
    result = finetune(FinetuneOptions("classify", tiny_init, str(train), str(tmp_path / "o"),
                                      eval=str(dev), max_length=16, epochs=6, batch_size=8,
                                      learning_rate=1e-3, warmup=0.1, strategy="one_device",
                                      progress=False))
    assert result.metrics["accuracy"] >= 0.9, result.history


@pytest.mark.slow
def test_sigterm_stops_with_143_and_the_rerun_resumes_to_the_uninterrupted_result(
        tmp_path, tiny_init, capsys, monkeypatch):
    """SIGTERM mid-run: exit 143 with a resume hint and no task.json (not a finished model);
    the same command then resumes and ends with the eval history and the best model of a run
    that was never stopped, even from a history that is out of step with the checkpoint."""
    import signal

    import bert_tf.tasks.finetuning as finetuning
    from bert_tf.training import Callback

    train, dev = sentiment_files(tmp_path, 48, 16)
    argv = ["finetune", "classify", "--train", train, "--eval", dev, "--epochs", 2,
            "--eval-every", 3, "--learning-rate", 1e-3]   # 6 steps/epoch, 12 steps
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert cli(*argv, *common(tiny_init, whole)) == 0

    class SigtermAt(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    class StoppedTrainer(finetuning.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.callbacks.append(SigtermAt())

    with monkeypatch.context() as patch:
        patch.setattr(finetuning, "Trainer", StoppedTrainer)
        capsys.readouterr()
        assert cli(*argv, *common(tiny_init, stopped)) == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM at step 3" in err and "rerun the same command to resume" in err
    assert not (stopped / "task.json").exists() and os.listdir(stopped / "checkpoints")

    # As a kill -9 between a checkpoint and an evaluation would leave it: the history also
    # lists a step after the checkpoint (to be redone), and lacks the one at the checkpoint.
    path = stopped / "eval_history.json"
    saved = json.loads(path.read_text())
    assert [step for step, _ in saved["history"]] == [3]
    path.write_text(json.dumps({"history": [[5, saved["history"][0][1]]],
                                "best": [5, saved["history"][0][1]]}))
    assert cli(*argv, *common(tiny_init, stopped)) == 0
    history = json.loads((stopped / "eval_history.json").read_text())
    expected = json.loads((whole / "eval_history.json").read_text())
    assert [step for step, _ in history["history"]] == [3, 6, 9, 12]
    assert history == expected
    a, b = (keras.saving.load_model(d / "model.keras") for d in (whole, stopped))
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=x.path)


@pytest.mark.slow
def test_ner_end_to_end(tmp_path, tiny_init, capsys):
    train, dev = tmp_path / "train.conll", tmp_path / "dev.conll"
    conll.write_conll(train, datasets.wnut_ner("train")[:32])
    conll.write_conll(dev, datasets.wnut_ner("dev")[:16])
    out = tmp_path / "ner"
    assert cli("finetune", "ner", *common(tiny_init, out), "--train", train, "--eval", dev,
               "--epochs", 1) == 0
    task = json.loads((out / "task.json").read_text())
    assert set(task["metrics"]) >= {"precision", "recall", "f1", "per_type"}
    labels = json.loads((out / "labels.json").read_text())
    assert labels[0] == "O" and all(t[:2] in ("B-", "I-") for t in labels[1:])
    capsys.readouterr()
    assert cli("predict", "--model", out, "--data", dev) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gold = datasets.wnut_ner("dev")[:16]
    assert [r["tokens"] for r in rows] == [tokens for tokens, _ in gold]
    assert all(len(r["tags"]) == len(r["tokens"]) and set(r["tags"]) <= set(labels) for r in rows)


@pytest.mark.slow
def test_squad_end_to_end_on_the_fixture(tmp_path, tiny_init, capsys):
    """The fixture (5 questions) is far too small to learn from: this checks that a span run
    completes, windows long contexts, and decodes valid spans of the right context."""
    from bert_tf.data.squad import read_squad
    fixture = tmp_path / "squad.json"
    datasets.write_split("squad_fixture", None, fixture)
    out = tmp_path / "qa"
    assert cli("finetune", "squad", *common(tiny_init, out, max_length=64), "--train", fixture,
               "--eval", fixture, "--epochs", 1, "--doc-stride", 24, "--max-query-length", 16) == 0
    task = json.loads((out / "task.json").read_text())
    assert task["task_settings"]["doc_stride"] == 24 and {"exact_match", "f1"} <= set(task["metrics"])
    capsys.readouterr()
    assert cli("predict", "--model", out, "--data", fixture) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    contexts = {e.id: e.context for e in read_squad(str(fixture))}
    assert sorted(r["id"] for r in rows) == sorted(contexts)
    for r in rows:
        assert r["answer"] and r["answer"] in contexts[r["id"]]
        assert len(r["answer"].split()) <= 30


@pytest.mark.parametrize("task, name, content, message", [
    ("classify", "bad.csv", "text,label\ngreat,fresh\nawful,meh\n",
     r"bad\.csv: line 3: label 'meh' is not one of the known labels"),
    ("classify", "bad.csv", "text,score\ngreat,fresh\n", r"bad\.csv: line 2: missing label column"),
    ("ner", "bad.conll", "Paris\tB-geo-loc\nis\n", r"bad\.conll: line 2: expected a token and a tag"),
    ("squad", "bad.json", json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "abc def",
     "qas": [{"id": "q", "question": "?", "answers": [{"text": "xyz", "answer_start": 0}]}]}]}]}),
     r"bad\.json: .*answer 'xyz' is not in the context"),
])
def test_bad_data_is_one_line_exit_2(tmp_path, tiny_init, capsys, task, name, content, message):
    import re
    good = {"classify": "text,label\ngood one,fresh\nbad one,rotten\n",
            "ner": "Paris\tB-geo-loc\nis\tO\n",
            "squad": None}[task]
    bad = tmp_path / name
    bad.write_text(content)
    train = bad if good is None else tmp_path / ("train" + os.path.splitext(name)[1])
    if good is not None:
        train.write_text(good)
    assert cli("finetune", task, *common(tiny_init, tmp_path / "o"), "--train", train,
               "--eval", bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "o" / "task.json").exists()


def test_evaluate_on_a_directory_that_is_not_a_finetune_output(tmp_path, capsys):
    assert cli("evaluate", "--model", tmp_path, "--data", tmp_path / "x.csv") == 2
    assert "task.json: missing" in capsys.readouterr().err
