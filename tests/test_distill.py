"""`bert-tf distill`: students built from their teacher's layers, the distillation loss, and the
run end to end on small real-data subsets with tiny encoders (the accuracy trade-off on the full
Rotten Tomatoes and WNUT splits is measured by tools/distill_tradeoff.py)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_tf.cli
from bert_tf.config import BertConfig
from bert_tf.data import classification, conll, datasets
from bert_tf.models import BertEncoder
from bert_tf.models.student import copy_teacher_weights, student_encoder, student_layer_map
from bert_tf.tasks.base import soft_cross_entropy

COMMANDS = ("finetune", "distill", "evaluate", "predict")


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    monkeypatch.setattr(bert_tf.cli, "COMMAND_MODULES",
                        tuple(dict.fromkeys(bert_tf.cli.COMMAND_MODULES + COMMANDS)))


def cli(*argv):
    try:
        return bert_tf.cli.main([str(a) for a in argv])
    except SystemExit as e:   # argparse's usage errors
        return e.code


TRAINING = ("--batch-size", 8, "--no-progress", "--strategy", "one_device", "--epochs", 1,
            "--learning-rate", 1e-3)


@pytest.fixture(scope="module")
def data(tmp_path_factory, minilm_vocab):
    """A 4-layer tiny encoder (real vocabulary), Rotten Tomatoes and WNUT subsets, and a
    classification and an NER teacher fine-tuned from the encoder."""
    folder = tmp_path_factory.mktemp("distill")
    init = str(folder / "init")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    keras.utils.set_random_seed(0)
    BertEncoder(config).save_pretrained(init)
    shutil.copy(minilm_vocab, os.path.join(init, "vocab.txt"))
    names = datasets.ROTTEN_TOMATOES_LABELS
    files = {"init": init}
    for split, n in (("train", 48), ("dev", 24)):
        files[split] = str(folder / f"{split}.csv")
        classification.write_classification(
            files[split], [(t, names[y]) for t, y in datasets.rotten_tomatoes(split)[:n]])
    files["ner_train"] = str(folder / "ner_train.txt")
    conll.write_conll(files["ner_train"], datasets.wnut_ner("train")[:40])
    files["teacher"] = str(folder / "teacher")
    assert cli("finetune", "classify", "--init", init, "--train", files["train"], "--eval",
               files["dev"], "--out", files["teacher"], "--max-length", 32, *TRAINING) == 0
    files["ner_teacher"] = str(folder / "ner_teacher")
    assert cli("finetune", "ner", "--init", init, "--train", files["ner_train"], "--out",
               files["ner_teacher"], "--max-length", 32, *TRAINING) == 0
    return files


def test_student_layer_map_takes_every_kth_layer_ending_with_the_top():
    assert student_layer_map(6, 3) == (1, 3, 5)
    assert student_layer_map(6, 2) == (2, 5)
    assert student_layer_map(12, 6) == (1, 3, 5, 7, 9, 11)
    assert student_layer_map(4, 1) == (3,)
    with pytest.raises(ValueError, match="not smaller than its 4-layer teacher"):
        student_layer_map(4, 4)
    with pytest.raises(ValueError, match="at least 1 layer"):
        student_layer_map(4, 0)


@pytest.mark.slow
def test_a_student_is_its_teachers_layers(data):
    """Every student tensor is the teacher's: layer j ← teacher layer map[j]; embeddings, pooler and
    head by name. A 1-layer student of a teacher whose other layers are identity-like is checked
    numerically too: its logits equal the teacher's run with only that layer."""
    from bert_tf.tasks.model_dir import FinetunedModel
    teacher = FinetunedModel.load(data["teacher"])
    layer_map = student_layer_map(4, 2)
    student = teacher.task.build_model(student_encoder(teacher.model.encoder, 2))
    copy_teacher_weights(teacher.model, student, layer_map)
    assert student.encoder.config.num_hidden_layers == 2
    for j, i in enumerate(layer_map):
        for a, b in zip(student.encoder.transformer_layers[j].weights,
                        teacher.model.encoder.transformer_layers[i].weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for name in ("embeddings", "pooler"):
        for a, b in zip(getattr(student.encoder, name).weights,
                        getattr(teacher.model.encoder, name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_array_equal(student.get_layer("classifier").kernel.numpy(),
                                  teacher.model.get_layer("classifier").kernel.numpy())
    # Numerically: the student's forward pass is the teacher's with layers 0 and 2 skipped.
    from bert_tf.layers import attention_bias_from_mask
    features = teacher.tokenizer(tf.constant(["a gripping film", "dull and long"]))
    inputs = {k: features[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    encoder = teacher.model.encoder
    hidden = encoder.embeddings(inputs["input_ids"], inputs["token_type_ids"])
    bias = attention_bias_from_mask(inputs["attention_mask"])
    for i in layer_map:
        hidden = encoder.transformer_layers[i](hidden, attention_bias=bias)
    expected = teacher.model.get_layer("classifier")(encoder.pooler(hidden[:, :1]))
    np.testing.assert_allclose(student(inputs)["logits"], expected, atol=1e-5)


def test_soft_cross_entropy_is_scaled_kl():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    t = 3.0

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p, q = softmax(teacher / t), softmax(student / t)
    kl = (p * (np.log(p) - np.log(q))).sum(-1)
    np.testing.assert_allclose(soft_cross_entropy(teacher, student, t), t * t * kl.mean(),
                               rtol=1e-5)
    weights = np.array([1, 0, 1, 0, 0], np.float32)
    np.testing.assert_allclose(soft_cross_entropy(teacher, student, t, weights),
                               t * t * kl[[0, 2]].mean(), rtol=1e-5)
    assert float(soft_cross_entropy(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_distill_writes_a_model_directory_that_evaluate_and_predict_read(data, tmp_path, capsys):
    out = tmp_path / "student"
    assert cli("distill", "--teacher", data["teacher"], "--student-layers", 2, "--train",
               data["train"], "--eval", data["dev"], "--out", out, *TRAINING) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    task = json.loads((out / "task.json").read_text())
    assert task["task"] == "classify" and task["max_length"] == 32   # the teacher's
    assert task["distillation"]["layer_map"] == [1, 3] and task["init"] is None
    assert task["distillation"]["teacher"] == os.path.abspath(data["teacher"])
    assert json.loads((out / "run.json").read_text())["record"]["kind"] == "distill"
    model = keras.saving.load_model(out / "model.keras")
    assert model.encoder.config.num_hidden_layers == 2
    assert cli("evaluate", "--model", out, "--data", data["dev"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(summary["metrics"])
    assert cli("predict", "--model", out, "--data", data["dev"], "--output",
               tmp_path / "p.jsonl") == 0
    # Several steps per tf.function call: the same student.
    looped = tmp_path / "student_k3"
    assert cli("distill", "--teacher", data["teacher"], "--student-layers", 2, "--train",
               data["train"], "--eval", data["dev"], "--out", looped, *TRAINING,
               "--steps-per-execution", 3) == 0
    capsys.readouterr()
    settings = json.loads((looped / "run.json").read_text())["settings"]
    assert settings["steps_per_execution"] == 3    # it reached the trainer's options
    other = keras.saving.load_model(looped / "model.keras")
    worst = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(),
                                                            other.get_weights()))
    assert worst <= 1e-6, worst
    # Rerun: the same run is complete; other settings are refused before any work.
    assert cli("distill", "--teacher", data["teacher"], "--student-layers", 2, "--train",
               data["train"], "--eval", data["dev"], "--out", out, *TRAINING) == 0
    assert cli("distill", "--teacher", data["teacher"], "--student-layers", 2, "--train",
               data["train"], "--eval", data["dev"], "--out", out, *TRAINING,
               "--temperature", 4) == 2
    assert "--temperature" in capsys.readouterr().err


@pytest.mark.slow
def test_with_alpha_1_the_labels_do_not_matter(data, tmp_path):
    """alpha = 1 trains on the teacher's distribution alone: the same texts with every label
    flipped give the same student, weight for weight."""
    flipped = tmp_path / "flipped.csv"
    rows = classification.read_classification(data["train"], "text", "label")
    names = rows.label_names
    classification.write_classification(
        flipped, [(t, names[1 - y]) for t, y in zip(rows.texts, rows.labels)])

    def student(train, name):
        out = tmp_path / name
        assert cli("distill", "--teacher", data["teacher"], "--student-layers", 1, "--train",
                   train, "--out", out, "--alpha", 1, *TRAINING) == 0
        return keras.saving.load_model(out / "model.keras").get_weights()

    for a, b in zip(student(data["train"], "a"), student(flipped, "b")):
        np.testing.assert_array_equal(a, b)


def test_unlabeled_texts_take_the_teachers_labels(data, tmp_path):
    from bert_tf.tasks import FinetuneOptions
    from bert_tf.tasks.distillation import Distillation
    unlabeled = tmp_path / "more.csv"
    texts = [t for t, _ in datasets.rotten_tomatoes("test")[:10]]
    classification.write_classification(unlabeled, [(t, "fresh") for t in texts])
    options = FinetuneOptions(task=None, init=None, train=data["train"], out=str(tmp_path / "o"),
                              teacher=data["teacher"], student_layers=2,
                              unlabeled=str(unlabeled))
    distillation = Distillation.prepare(options)
    task = distillation.task(32)
    labeled = task.encode(task.read(data["train"]), training=True)
    features = distillation.training_features(task, labeled, str(unlabeled), 16)
    assert len(features) == 58
    teacher_logits = features.targets["teacher_logits"]
    assert teacher_logits.shape == (58, 2)
    # the unlabeled rows' hard labels are the teacher's answers, not the file's column
    np.testing.assert_array_equal(features.targets["labels"][48:],
                                  teacher_logits[48:].argmax(-1))
    np.testing.assert_array_equal(features.targets["labels"][:48], labeled.targets["labels"])
    predicted = distillation.teacher.model(
        {k: v[:4] for k, v in labeled.inputs.items()})["logits"]
    np.testing.assert_allclose(teacher_logits[:4], predicted, atol=1e-5)


@pytest.mark.slow
def test_ner_students_learn_the_teachers_tags(data, tmp_path):
    out = tmp_path / "ner_student"
    assert cli("distill", "--teacher", data["ner_teacher"], "--student-layers", 2, "--train",
               data["ner_train"], "--out", out, *TRAINING) == 0
    task = json.loads((out / "task.json").read_text())
    assert task["task"] == "ner" and task["distillation"]["layer_map"] == [1, 3]
    with open(os.path.join(data["ner_teacher"], "labels.json")) as f:
        assert json.loads((out / "labels.json").read_text()) == json.load(f)
    assert cli("evaluate", "--model", out, "--data", data["ner_train"]) == 0


@pytest.mark.slow
def test_a_regressor_distils_with_unlabeled_texts(data, tmp_path):
    """Regression: the student learns the teacher's score (squared distance, no temperature);
    unlabeled texts take the teacher's score as their label."""
    from bert_tf.tasks import FinetuneOptions
    from bert_tf.tasks.distillation import Distillation
    texts = [t for t, _ in datasets.rotten_tomatoes("train")[:40]]
    train = tmp_path / "scores.csv"
    classification.write_classification(train, [(t, str(i % 5 / 4)) for i, t in
                                                 enumerate(texts)])
    unlabeled = tmp_path / "more.csv"
    classification.write_classification(unlabeled, [(t, "0") for t in texts[:8]])
    teacher = tmp_path / "teacher"
    assert cli("finetune", "regress", "--init", data["init"], "--train", train, "--out", teacher,
               "--max-length", 32, *TRAINING) == 0
    out = tmp_path / "student"
    assert cli("distill", "--teacher", teacher, "--student-layers", 2, "--train", train,
               "--unlabeled", unlabeled, "--out", out, *TRAINING) == 0
    assert json.loads((out / "task.json").read_text())["task"] == "regress"
    options = FinetuneOptions(task=None, init=None, train=str(train), out=str(tmp_path / "o"),
                              teacher=str(teacher), student_layers=2, unlabeled=str(unlabeled))
    distillation = Distillation.prepare(options)
    task = distillation.task(32)
    features = distillation.training_features(
        task, task.encode(task.read(str(train)), training=True), str(unlabeled), 16)
    scores = features.targets["teacher_logits"][:, 0]
    np.testing.assert_allclose(features.targets["labels"][40:], scores[40:], rtol=1e-6)
    np.testing.assert_allclose(features.targets["labels"][:40], [i % 5 / 4 for i in range(40)])


@pytest.mark.parametrize("case", ["other_task", "too_many_layers", "vocab", "unlabeled_ner",
                                  "empty_unlabeled", "alpha", "both_students", "not_a_teacher"])
def test_bad_distillation_input_is_one_clear_error(data, tmp_path, capsys, case):
    out = tmp_path / "out"
    args = ["--teacher", data["teacher"], "--student-layers", 2, "--train", data["train"]]
    expect = {
        "other_task": "does not fit the 'ner' teacher",
        "too_many_layers": "not smaller than its 4-layer teacher",
        "vocab": "differs from the teacher's",
        "unlabeled_ner": "cannot label raw text",
        "empty_unlabeled": "--unlabeled",
        "alpha": "--alpha",
        "both_students": "not allowed with argument",
        "not_a_teacher": "--teacher",
    }[case]
    if case == "other_task":
        args = ["--teacher", data["ner_teacher"], "--student-layers", 2, "--train", data["train"]]
    elif case == "too_many_layers":
        args[3] = 4
    elif case == "vocab":
        other = tmp_path / "other_init"
        shutil.copytree(data["init"], other)
        with open(other / "vocab.txt", "a") as f:
            f.write("[EXTRA]\n")
        args = ["--teacher", data["teacher"], "--student-init", other, "--train", data["train"]]
    elif case == "unlabeled_ner":
        args = ["--teacher", data["ner_teacher"], "--student-layers", 2, "--train",
                data["ner_train"], "--unlabeled", data["ner_train"]]
    elif case == "empty_unlabeled":
        empty = tmp_path / "empty.csv"
        empty.write_text("text,label\n")
        args += ["--unlabeled", empty]
    elif case == "alpha":
        args += ["--alpha", 1.5]
    elif case == "both_students":
        args += ["--student-init", data["init"]]
    elif case == "not_a_teacher":
        args[1] = data["init"]
    assert cli("distill", *args, "--out", out, *TRAINING) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
    assert not out.exists()
