"""`bert-tf distill`: students built from their teacher's layers, the distillation loss, and the
run end to end on small real-data subsets with tiny encoders (the accuracy trade-off on the full
Rotten Tomatoes and WNUT splits is measured by tools/distill_tradeoff.py)."""

import dataclasses
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


def test_student_layer_map_takes_the_layers_named_by_index():
    assert student_layer_map(6, (0, 2, 5)) == (0, 2, 5)
    assert student_layer_map(6, [1, 4]) == (1, 4)
    for layers, message in (((2, 1), "bottom to top"), ((0, 0), "bottom to top"),
                            ((0, 6), "layers 0 to 5; 6 is not"), ((-1, 2), "-1 is not"),
                            ((), "at least 1 layer"), ((0, 1, 2, 3, 4, 5), "not smaller"),
                            ((0, 2.0), "integer indices"), ((True, 2), "integer indices")):
        with pytest.raises(ValueError, match=message):
            student_layer_map(6, layers)


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
def test_a_student_of_layers_named_by_index(data, tmp_path, capsys):
    """`--student-layers 0,2` copies the teacher's layers 0 and 2 (not the default 1 and 3): with
    the encoder frozen the student's layers are still exactly those; the run resumes as the same
    run and another choice of layers is a different one."""
    from bert_tf.tasks.model_dir import FinetunedModel
    out = tmp_path / "student"
    args = ["--teacher", data["teacher"], "--student-layers", "0,2", "--train", data["train"],
            "--out", out, *TRAINING]
    assert cli("distill", *args, "--freeze-encoder") == 0
    task = json.loads((out / "task.json").read_text())
    assert task["distillation"]["layer_map"] == [0, 2]
    assert task["distillation"]["student_layers"] == 2
    assert json.loads((out / "run.json").read_text())["record"]["defines"]["student_layers"] == \
        [0, 2]
    teacher = FinetunedModel.load(data["teacher"]).model
    student = keras.saving.load_model(out / "model.keras")
    assert student.encoder.config.num_hidden_layers == 2
    for j, i in enumerate((0, 2)):
        for a, b in zip(student.encoder.transformer_layers[j].weights,
                        teacher.encoder.transformer_layers[i].weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert cli("distill", *args, "--freeze-encoder") == 0       # complete: nothing to do
    capsys.readouterr()
    args[3] = "1,3"
    assert cli("distill", *args, "--freeze-encoder") == 2
    assert "--student-layers" in capsys.readouterr().err


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


def test_an_ensemble_teaches_its_mean_distribution(data, tmp_path):
    """`--ensemble`: the soft targets are the teachers' mean distribution at the temperature
    (computed here from each teacher's own logits), the unlabeled texts' hard labels that
    mixture's argmax; a regressor's ensemble gives the mean score."""
    from bert_tf.tasks import FinetuneOptions
    from bert_tf.tasks.distillation import Distillation, average_teacher_outputs
    from bert_tf.tasks.model_dir import FinetunedModel
    second = tmp_path / "second"
    assert cli("finetune", "classify", "--init", data["init"], "--train", data["train"],
               "--out", second, "--max-length", 32, *TRAINING, "--seed", 1) == 0
    unlabeled = tmp_path / "more.csv"
    classification.write_classification(
        unlabeled, [(t, "fresh") for t, _ in datasets.rotten_tomatoes("test")[:10]])
    t = 3.0
    options = FinetuneOptions(task=None, init=None, train=data["train"], out=str(tmp_path / "o"),
                              teacher=data["teacher"], student_layers=2, temperature=t,
                              unlabeled=str(unlabeled), max_length=32, ensemble=(str(second),))
    distillation = Distillation.prepare(options)
    task = distillation.task(32)
    labeled = task.encode(task.read(data["train"]), training=True)
    features = distillation.training_features(task, labeled, str(unlabeled), 16)
    inputs = {k: tf.constant(v) for k, v in features.inputs.items()}
    each = [FinetunedModel.load(d).model(inputs)["logits"].numpy()
            for d in (data["teacher"], second)]
    assert np.abs(each[0] - each[1]).max() > 1e-3          # two different teachers
    mixture = np.mean([tf.nn.softmax(z / t).numpy() for z in each], 0)
    ours = features.targets["teacher_logits"]
    np.testing.assert_allclose(tf.nn.softmax(ours / t).numpy(), mixture, atol=1e-5)
    np.testing.assert_array_equal(features.targets["labels"][48:], mixture[48:].argmax(-1))
    assert distillation.summary()["ensemble"] == [os.path.abspath(second)]
    # One teacher averaged with itself is itself; scores are averaged as numbers.
    z = each[0][:, None, :].repeat(3, 1)                     # [n, 3, classes]: ner-shaped
    same = average_teacher_outputs([{"logits": z}, {"logits": z}], t)["logits"]
    np.testing.assert_allclose(tf.nn.softmax(same / t).numpy(), tf.nn.softmax(z / t).numpy(),
                               atol=1e-6)
    scores = average_teacher_outputs([{"logits": np.array([[1.0], [2.0]])},
                                      {"logits": np.array([[3.0], [-2.0]])}], t, scores=True)
    np.testing.assert_array_equal(scores["logits"], [[2.0], [0.0]])


@pytest.mark.slow
def test_distill_with_an_ensemble_records_its_teachers(data, tmp_path, capsys):
    """The CLI's `--ensemble` reaches the run: task.json names the teachers, and a rerun without
    them (or with others) is another run, refused before any work."""
    out = tmp_path / "student"
    args = ["--teacher", data["teacher"], "--student-layers", 2, "--train", data["train"],
            "--out", out, *TRAINING]
    assert cli("distill", *args, "--ensemble", data["teacher"]) == 0
    task = json.loads((out / "task.json").read_text())
    assert task["distillation"]["ensemble"] == [os.path.abspath(data["teacher"])]
    record = json.loads((out / "run.json").read_text())["record"]
    assert len(record["defines"]["ensemble_sha256"]) == 1
    capsys.readouterr()
    assert cli("distill", *args) == 2
    assert "--ensemble" in capsys.readouterr().err


def test_unlabeled_ner_sentences_take_the_teachers_tags(data, tmp_path):
    """An NER teacher labels raw sentences: their hard tags are its argmax at each word's first
    piece (IGNORE elsewhere, as gold tags are placed), their soft targets its logits."""
    from bert_tf.tasks import FinetuneOptions
    from bert_tf.tasks.distillation import Distillation
    unlabeled = tmp_path / "more.conll"   # tokens only, one per line: no tag column at all
    sentences = [tokens for tokens, _ in datasets.wnut_ner("dev")[:12]]
    unlabeled.write_text("\n\n".join("\n".join(tokens) for tokens in sentences) + "\n")
    options = FinetuneOptions(task=None, init=None, train=data["ner_train"],
                              out=str(tmp_path / "o"), teacher=data["ner_teacher"],
                              student_layers=2, unlabeled=str(unlabeled))
    distillation = Distillation.prepare(options)
    task = distillation.task(32)
    labeled = task.encode(task.read(data["ner_train"]), training=True)
    features = distillation.training_features(task, labeled, str(unlabeled), 16)
    n = len(labeled)
    extra = task.encode(task.read(str(unlabeled), labeled=False))
    assert len(features) == n + len(extra) >= n + 12
    np.testing.assert_array_equal(features.targets["labels"][:n], labeled.targets["labels"])
    labels, logits = features.targets["labels"][n:], features.targets["teacher_logits"][n:]
    starts = extra.extras["first_word"] >= 0                                   # [W, seq]
    assert (labels[~starts] == -100).all() and starts.sum() >= sum(map(len, sentences))
    np.testing.assert_array_equal(labels[starts], logits.argmax(-1)[starts])
    predicted = distillation.teacher.model({k: v[:3] for k, v in extra.inputs.items()})["logits"]
    np.testing.assert_allclose(logits[:3], predicted, atol=1e-5)
    assert distillation.record(str(unlabeled))["unlabeled_sha256"]


@pytest.mark.slow
def test_ner_students_learn_the_teachers_tags(data, tmp_path):
    out = tmp_path / "ner_student"
    assert cli("distill", "--teacher", data["ner_teacher"], "--student-layers", 2, "--train",
               data["ner_train"], "--out", out, "--augment", 1, *TRAINING) == 0
    task = json.loads((out / "task.json").read_text())
    assert task["task"] == "ner" and task["distillation"]["layer_map"] == [1, 3]
    assert task["distillation"]["augment"] == 1
    assert json.loads((out / "run.json").read_text())["record"]["defines"]["augment"] == 1
    with open(os.path.join(data["ner_teacher"], "labels.json")) as f:
        assert json.loads((out / "labels.json").read_text()) == json.load(f)
    assert cli("evaluate", "--model", out, "--data", data["ner_train"]) == 0


def test_augment_adds_tag_keeping_sentences_with_the_teachers_soft_tags(data, tmp_path):
    from bert_tf.tasks import FinetuneOptions
    from bert_tf.tasks.distillation import Distillation
    options = FinetuneOptions(task=None, init=None, train=data["ner_train"],
                              out=str(tmp_path / "o"), teacher=data["ner_teacher"],
                              student_layers=2, augment=2, augment_rate=0.3)
    distillation = Distillation.prepare(options)
    task = distillation.task(32)
    records = task.read(data["ner_train"])
    augmented = distillation.augmented(task, records, seed=0)
    assert augmented.sentences[:40] == records.sentences
    assert 40 < len(augmented) <= 120
    assert augmented.sentences[40:] == distillation.augmented(task, records, 0).sentences[40:]
    features = distillation.training_features(
        task, task.encode(augmented, training=True), None, 16)
    plain = task.encode(records, training=True)
    assert len(features) > len(plain)
    # The new sentences' hard labels are their kept tags; their soft targets the teacher's logits.
    logits = distillation.teacher.model({k: v[-4:] for k, v in features.inputs.items()})["logits"]
    np.testing.assert_allclose(features.targets["teacher_logits"][-4:], logits, atol=1e-5)
    tags = [distillation.teacher.task.label_names.index(t) for t in augmented.sentences[-1][1]]
    labels, words = features.targets["labels"][-1], features.extras["first_word"][-1]   # [seq]
    assert (labels != -100).any()
    np.testing.assert_array_equal(labels[labels != -100], np.take(tags, words[labels != -100]))
    assert distillation.summary()["augment"] == 2
    assert distillation.record(None)["augment"] == 2
    # Off, the run record is what it was before --augment existed (older runs still resume).
    plain_run = Distillation.prepare(dataclasses.replace(options, augment=0))
    assert "augment" not in plain_run.record(None) and plain_run.augmented(task, records, 0) \
        is records


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


@pytest.mark.parametrize("case", ["other_task", "too_many_layers", "vocab", "unlabeled_bytes",
                                  "empty_unlabeled", "alpha", "both_students", "not_a_teacher",
                                  "augment_classify", "augment_negative", "augment_rate",
                                  "layers_order", "layers_missing", "layers_text",
                                  "ensemble_task", "ensemble_labels", "ensemble_vocab",
                                  "ensemble_not_a_model"])
def test_bad_distillation_input_is_one_clear_error(data, tmp_path, capsys, case):
    out = tmp_path / "out"
    args = ["--teacher", data["teacher"], "--student-layers", 2, "--train", data["train"]]
    expect = {
        "other_task": "does not fit the 'ner' teacher",
        "too_many_layers": "not smaller than its 4-layer teacher",
        "vocab": "differs from the teacher's",
        "unlabeled_bytes": "not UTF-8",
        "empty_unlabeled": "--unlabeled",
        "alpha": "--alpha",
        "both_students": "not allowed with argument",
        "not_a_teacher": "--teacher",
        "augment_classify": "no replacement that keeps its labels",
        "augment_negative": "--augment is a number",
        "augment_rate": "--augment-rate",
        "layers_order": "bottom to top",
        "layers_missing": "the teacher has layers 0 to 3; 4 is not one of them",
        "layers_text": "a layer count K or the teacher's layers by index",
        "ensemble_task": "is a 'ner' model and --teacher",
        "ensemble_labels": "are not the teacher's ['fresh', 'rotten']",
        "ensemble_vocab": "its vocabulary or casing differs from the teacher's",
        "ensemble_not_a_model": "--ensemble",
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
    elif case == "unlabeled_bytes":
        latin1 = tmp_path / "latin1.conll"
        latin1.write_bytes("Caf\u00e9\nde\nFlore\n".encode("latin-1"))
        args = ["--teacher", data["ner_teacher"], "--student-layers", 2, "--train",
                data["ner_train"], "--unlabeled", latin1]
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
    elif case == "augment_classify":
        args += ["--augment", 2]
    elif case.startswith("layers_"):
        args[3] = {"layers_order": "2,1", "layers_missing": "0,4", "layers_text": "0,two"}[case]
    elif case == "ensemble_task":
        args += ["--ensemble", data["ner_teacher"]]
    elif case in ("ensemble_labels", "ensemble_vocab"):
        other = tmp_path / "other_teacher"
        shutil.copytree(data["teacher"], other)
        if case == "ensemble_labels":   # the same names, the class ids swapped
            (other / "labels.json").write_text(json.dumps(["rotten", "fresh"]))
        else:                           # the same size, two tokens' ids swapped
            lines = (other / "vocab.txt").read_text(encoding="utf-8").splitlines()
            lines[1000], lines[1001] = lines[1001], lines[1000]
            (other / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        args += ["--ensemble", other]
    elif case == "ensemble_not_a_model":
        args += ["--ensemble", data["init"]]
    elif case in ("augment_negative", "augment_rate"):
        args = ["--teacher", data["ner_teacher"], "--student-layers", 2, "--train",
                data["ner_train"]]
        args += ["--augment", -1] if case == "augment_negative" else \
            ["--augment", 1, "--augment-rate", 0]
    assert cli("distill", *args, "--out", out, *TRAINING) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------------------ hidden-state and attention transfer
def narrow_init(folder, hidden=16, heads=2, layers=2):
    """A pre-trained-like encoder narrower than the teacher (hidden 16 < 32), no vocabulary yet."""
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=32,
                        max_position_embeddings=64)
    keras.utils.set_random_seed(1)
    BertEncoder(config).save_pretrained(str(folder))
    return str(folder)


def with_vocab(folder, data):
    shutil.copy(os.path.join(data["init"], "vocab.txt"), os.path.join(folder, "vocab.txt"))
    return folder


def test_transfer_losses_are_the_documented_means():
    from bert_tf.tasks.distillation import attention_transfer_loss, hidden_transfer_loss
    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int32)                      # [b, t]
    student = [rng.normal(size=(2, 4, 3)).astype(np.float32) for _ in range(2)]
    teacher = [rng.normal(size=(2, 4, 3)).astype(np.float32) for _ in range(2)]
    per_layer = [((s - t) ** 2).mean(-1)[mask == 1].mean() for s, t in zip(student, teacher)]
    np.testing.assert_allclose(hidden_transfer_loss(student, teacher, mask), np.mean(per_layer),
                               rtol=1e-5)
    # padding rows do not count: changing them changes nothing
    moved = [s.copy() for s in student]
    moved[0][0, 3] += 100.0
    np.testing.assert_allclose(hidden_transfer_loss(moved, teacher, mask), np.mean(per_layer),
                               rtol=1e-5)
    # a projection maps the student's width to the teacher's
    projection = keras.layers.Dense(3, use_bias=False, dtype="float32")
    projection.build((None, None, 2))
    narrow = [s[..., :2] for s in student]
    kernel = projection.kernel.numpy()
    expected = np.mean([((s @ kernel - t) ** 2).mean(-1)[mask == 1].mean()
                        for s, t in zip(narrow, teacher)])
    np.testing.assert_allclose(hidden_transfer_loss(narrow, teacher, mask, projection), expected,
                               rtol=1e-5)

    def attention(logits):                  # softmax over keys with BERT's mask on the padding
        scores = logits + (1 - mask[:, None, None, :]) * -10000.0
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)
    s_att = [attention(rng.normal(size=(2, 2, 4, 4))) for _ in range(2)]            # [b, n, t, t]
    t_att = [attention(rng.normal(size=(2, 2, 4, 4))) for _ in range(2)]
    kls = []
    for s, t in zip(s_att, t_att):
        terms = np.where(t > 0, t * (np.log(np.maximum(t, 1e-30)) - np.log(np.maximum(s, 1e-30))),
                         0.0)
        kl = terms.sum(-1).mean(1)                                                   # [b, t]
        kls.append(kl[mask == 1].mean())
    value = attention_transfer_loss(s_att, t_att, mask)
    np.testing.assert_allclose(value, np.mean(kls), rtol=1e-5)
    assert np.isfinite(value) and float(attention_transfer_loss(t_att, t_att, mask)) == \
        pytest.approx(0.0, abs=1e-6)
    # the gradient at padding keys (probability 0 in both) is 0, not NaN
    s_var = tf.Variable(s_att[0])
    with tf.GradientTape() as tape:
        loss = attention_transfer_loss([s_var], t_att[:1], mask)
    assert np.isfinite(tape.gradient(loss, s_var).numpy()).all()


def test_forward_with_states_is_the_models_own_pass(data):
    """The task outputs of `forward_with_states` are the model's; the states are the encoder's."""
    from bert_tf.tasks.model_dir import FinetunedModel
    teacher = FinetunedModel.load(data["teacher"])
    features = teacher.tokenizer(tf.constant(["a gripping film", "dull and long"]))
    inputs = {k: features[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    outputs, states, attentions = teacher.model.forward_with_states(inputs,
                                                                    return_attention=True)
    np.testing.assert_allclose(outputs["logits"], teacher.model(inputs)["logits"], atol=1e-5)
    assert len(states) == 5 and len(attentions) == 4
    assert tuple(attentions[0].shape) == (2, 2, 32, 32)
    expected = teacher.model.encoder(inputs)["sequence_output"]
    np.testing.assert_allclose(states[-1], expected, atol=1e-5)


@pytest.mark.slow
def test_transfer_writes_a_plain_student_and_the_record_holds_the_weights(data, tmp_path,
                                                                          capsys):
    out = tmp_path / "student"
    args = ["--teacher", data["teacher"], "--student-layers", 2, "--train", data["train"],
            "--eval", data["dev"], *TRAINING]
    assert cli("distill", *args, "--out", out, "--hidden-weight", 1,
               "--attention-weight", 1) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    distillation = json.loads((out / "task.json").read_text())["distillation"]
    assert distillation["hidden_weight"] == 1.0 and distillation["attention_weight"] == 1.0
    assert distillation["transfer_layer_map"] == [1, 3]
    assert distillation["hidden_projection"] is False
    defines = json.loads((out / "run.json").read_text())["record"]["defines"]
    assert defines["hidden_weight"] == 1.0 and defines["attention_weight"] == 1.0
    model = keras.saving.load_model(out / "model.keras")
    assert type(model).__name__ == "BertClassifier"
    assert model.encoder.config.num_hidden_layers == 2
    assert cli("evaluate", "--model", out, "--data", data["dev"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(summary["metrics"])
    assert cli("predict", "--model", out, "--data", data["dev"], "--output",
               tmp_path / "p.jsonl") == 0
    # The losses were trained on and logged.
    from bert_tf.training.curves import read_scalars
    scalars = read_scalars(str(out / "tensorboard"))
    assert {"train/hidden_loss", "train/attention_loss"} <= set(scalars), sorted(scalars)
    # Another transfer weight is another run: refused before any work, naming the flag.
    assert cli("distill", *args, "--out", out, "--hidden-weight", 2,
               "--attention-weight", 1) == 2
    assert "--hidden-weight: 1.0 → 2.0" in capsys.readouterr().err


@pytest.mark.slow
def test_hidden_transfer_brings_the_students_states_to_the_teachers(data, tmp_path):
    """After one epoch, a student trained with --hidden-weight has mapped hidden states closer to
    its teacher's than the same student trained without it (MSE on the training texts)."""
    from bert_tf.tasks.distillation import hidden_transfer_loss
    from bert_tf.tasks.model_dir import FinetunedModel
    teacher = FinetunedModel.load(data["teacher"])
    task = teacher.task
    inputs = task.encode(task.read(data["train"])).inputs
    t_states = teacher.model.encoder.encode(inputs, all_layers=True)
    layer_map = (1, 3)
    targets = [t_states[0]] + [t_states[i + 1] for i in layer_map]

    def mse(weight):
        out = tmp_path / f"w{weight}"
        assert cli("distill", "--teacher", data["teacher"], "--student-layers", 2, "--train",
                   data["train"], "--out", out, "--hidden-weight", weight, *TRAINING) == 0
        student = keras.saving.load_model(out / "model.keras")
        _, states, _ = student.forward_with_states(inputs)
        return float(hidden_transfer_loss(states, targets, inputs["attention_mask"]))

    without, with_transfer = mse(0), mse(10)
    assert with_transfer < 0.7 * without, (with_transfer, without)


@pytest.mark.slow
def test_a_narrower_student_learns_through_a_projection_that_resumes_and_is_not_saved(
        data, tmp_path, capsys, monkeypatch):
    """--student-init of a narrower encoder (16 < 32 units): the projection W_h trains with the
    student, lives in the checkpoints (a run stopped by SIGTERM and resumed ends with the weights
    of an uninterrupted one, projection included) and not in model.keras."""
    import signal

    import bert_tf.tasks.finetuning as finetuning
    from bert_tf.models.pretrained import load_encoder
    from bert_tf.tasks.model_dir import FinetunedModel
    from bert_tf.training import Callback
    narrow = with_vocab(narrow_init(tmp_path / "narrow"), data)
    args = ["--teacher", data["teacher"], "--student-init", narrow, "--train", data["train"],
            "--hidden-weight", 1, "--attention-weight", 1, *TRAINING, "--epochs", 2]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"   # 6 steps/epoch, 12 steps
    assert cli("distill", *args, "--out", whole) == 0
    distillation = json.loads((whole / "task.json").read_text())["distillation"]
    assert distillation["hidden_projection"] is True
    assert distillation["transfer_layer_map"] == [1, 3]         # uniform: 2 of 4 layers

    def projection(out, step):
        path = str(out / "checkpoints" / f"ckpt-{step}")
        names = [name for name, _ in tf.train.list_variables(path) if "auxiliary" in name
                 and "OPTIMIZER_SLOT" not in name and "kernel" in name]
        assert len(names) == 1, names
        return tf.train.load_variable(path, names[0])

    kernel = projection(whole, 12)
    assert kernel.shape == (16, 32)
    assert np.abs(kernel - projection(whole, 6)).max() > 0    # it trains
    model = keras.saving.load_model(whole / "model.keras")
    assert model.encoder.config.hidden_size == 16
    assert not [w.path for w in model.weights if "projection" in w.path]
    # The plain student: the variables of the task model on that encoder, and no others.
    plain = FinetunedModel.load(data["teacher"]).task.build_model(load_encoder(narrow))
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in plain.weights]
    assert cli("evaluate", "--model", whole, "--data", data["dev"]) == 0

    class SigtermAt(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    class StoppedTrainer(finetuning.Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.callbacks.append(SigtermAt())

    with monkeypatch.context() as patch:
        patch.setattr(finetuning, "Trainer", StoppedTrainer)
        assert cli("distill", *args, "--out", stopped) == 143
    assert not (stopped / "task.json").exists()
    assert cli("distill", *args, "--out", stopped) == 0
    capsys.readouterr()
    np.testing.assert_allclose(projection(stopped, 12), kernel, atol=1e-6)
    resumed = keras.saving.load_model(stopped / "model.keras")
    for a, b in zip(model.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


@pytest.mark.parametrize("case", ["heads", "deeper", "negative", "nan", "frozen"])
def test_bad_transfer_input_is_one_clear_error(data, tmp_path, capsys, case):
    out = tmp_path / "out"
    args = ["--teacher", data["teacher"], "--student-layers", 2, "--train", data["train"],
            "--attention-weight", 1]
    if case == "heads":     # 4 heads of 4 units against the teacher's 2 heads
        init = with_vocab(narrow_init(tmp_path / "four_heads", heads=4), data)
        args[2:4] = ["--student-init", init]
        expect = ("has 4 attention heads per layer and the teacher 2",)
    elif case == "deeper":  # 5 layers under a 4-layer teacher
        init = with_vocab(narrow_init(tmp_path / "deep", layers=5), data)
        args[2:4] = ["--student-init", init]
        expect = ("5 layers is deeper than its 4-layer teacher",)
    elif case == "negative":
        args += ["--hidden-weight", -1]
        expect = ("--hidden-weight must be a finite number >= 0", "-1")
    elif case == "nan":
        args[-1] = "nan"
        expect = ("--attention-weight must be a finite number >= 0",)
    else:
        args += ["--freeze-encoder"]
        expect = ("--freeze-encoder",)
    assert cli("distill", *args, "--out", out, *TRAINING) == 2
    err = capsys.readouterr().err
    assert all(e in err for e in expect) and "Traceback" not in err, err
    assert not out.exists()
