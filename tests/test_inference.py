"""The one inference path (`bert_tf.tasks.inference`) and the model-directory contract
(`bert_tf.tasks.model_dir`): predict's answers come from the same graph functions the export
serves; task.json is read strictly; regression is a task of its own."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig, BertEncoder, metrics
from bert_tf.models import BertClassifier
from bert_tf.tasks import ClassificationTask, RegressionTask, model_dir
from bert_tf.tasks.inference import concatenate_batches, run_inference
from bert_tf.tasks.registry import default_task
from bert_tf.text import BertTokenizer

WORDS = ["the", "film", "was", "good", "bad", "a", "plot", "is", "mess", "##es", "café", "très"]


@pytest.fixture(scope="module")
def tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    return BertTokenizer(vocab, lowercase=True, sequence_length=12)


def tiny_classifier(tokenizer, num_classes=2, seed=3):
    import keras
    keras.utils.set_random_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=16,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32, initializer_range=0.2)
    return BertClassifier(BertEncoder(config), num_classes=num_classes)


def test_predictions_are_the_models_logits_through_the_tasks_decoder(tokenizer):
    model = tiny_classifier(tokenizer)
    task = ClassificationTask(tokenizer, ("bad", "good"), text_pair_column="pair")
    records = task.records_from_texts(["the film was good\ta plot", "bad\tmesses",
                                       "the plot is a mess the film was bad the end\tvery long",
                                       "café\ttrès", "x\ty"])
    expected = np.asarray(model(task.encode(records).inputs, training=False)["logits"])
    for jit_compile in (False, True):
        decoded = run_inference(task, model, records, batch_size=2, jit_compile=jit_compile)
        np.testing.assert_allclose(decoded["logits"], expected, atol=1e-5)
        assert list(decoded["labels"]) == [("bad", "good")[i] for i in expected.argmax(-1)]
    rows = task.rows(records, decoded)
    assert rows[0]["text_pair"] == "a plot" and rows[0]["label"] == decoded["labels"][0]
    assert sum(rows[2]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_batches_with_different_inner_widths_concatenate_with_padding():
    parts = [{"tags": np.array([[b"B", b"O"]]), "starts": np.array([[0, 4]]),
              "score": np.array([1.5])},
             {"tags": np.array([[b"O"], [b"I"]]), "starts": np.array([[2], [3]]),
              "score": np.array([0.5, 2.0])}]
    out = concatenate_batches(parts)
    assert out["tags"].tolist() == [[b"B", b"O"], [b"O", b""], [b"I", b""]]
    assert out["starts"].tolist() == [[0, 4], [2, -1], [3, -1]]
    assert out["score"].tolist() == [1.5, 0.5, 2.0]


def test_regression_task_reads_numbers_trains_on_mse_and_scores_correlation(tokenizer, tmp_path):
    from scipy import stats
    path = tmp_path / "sts.csv"
    path.write_text("text,text_pair,label\nthe film,a plot,4.5\nbad,good,0.25\n"
                    "the plot,is a mess,2\n", encoding="utf-8")
    task = RegressionTask(tokenizer, (), text_pair_column="text_pair")
    records = task.read(str(path))
    assert records.labels == [4.5, 0.25, 2.0]
    model = task.build_model(tiny_classifier(tokenizer, num_classes=2).encoder)
    assert model.num_classes == 1
    features = task.encode(records, training=True)
    outputs = model(features.inputs, training=False)
    loss = task.loss(outputs, features.targets)["loss"]
    np.testing.assert_allclose(loss, np.mean((np.asarray(outputs["logits"])[:, 0]
                                              - np.array([4.5, 0.25, 2.0])) ** 2), rtol=1e-5)
    decoded = run_inference(task, model, records)
    np.testing.assert_allclose(decoded["score"], np.asarray(outputs["logits"])[:, 0], atol=1e-5)
    scores = task.score(records, decoded)
    assert scores["pearson"] == pytest.approx(stats.pearsonr(records.labels, decoded["score"])[0])
    y, p = [1.0, 2.0, 2.0, 5.0, 3.0], [0.1, 0.3, 0.2, 0.9, 0.2]
    assert metrics.regression_metrics(y, p)["spearman"] == pytest.approx(stats.spearmanr(y, p)[0])
    path.write_text("text,text_pair,label\nthe film,x,high\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must hold numbers for regression"):
        task.read(str(path))


def write_model_dir(directory, model, tokenizer, task, **task_fields):
    os.makedirs(directory, exist_ok=True)
    model_dir.save_model_atomic(model, directory)
    model_dir.write_labels(directory, task.label_names)
    model_dir.write_vocab(directory, tokenizer.get_vocabulary())
    model_dir.write_task(directory, {"task": task.name, "max_length": tokenizer.sequence_length,
                                     "lowercase": tokenizer.lowercase,
                                     "task_settings": task.settings(), **task_fields})
    return str(directory)


def test_model_directory_round_trip_and_strict_errors(tokenizer, tmp_path):
    model = tiny_classifier(tokenizer)
    task = default_task(model, tokenizer, labels=("bad", "good"), pair=True)
    directory = write_model_dir(tmp_path / "run", model, tokenizer, task)
    loaded = model_dir.FinetunedModel.load(directory)
    # the pair setting travels in task_settings and comes back as the task's inputs
    assert loaded.task.serving_input_names == ("text", "text_pair")
    assert loaded.task.label_names == ("bad", "good") and loaded.task_type == "classify"

    task_path = os.path.join(directory, "task.json")
    good = json.loads(open(task_path).read())

    def broken(change, message):
        record = {**good, **change}
        record = {k: v for k, v in record.items() if v is not None}
        with open(task_path, "w") as f:
            json.dump(record, f)
        with pytest.raises(model_dir.ModelDirError, match=message):
            model_dir.FinetunedModel.load(directory)

    broken({"format_version": 99}, "format_version 99 is not one this bert_tf reads")
    broken({"max_length": None}, "missing field 'max_length'")
    broken({"lowercase": "yes"}, "field 'lowercase' must be true or false")
    broken({"task": "ner"}, "task 'ner' but the model is a BertClassifier")
    broken({"task_settings": {"colour": "blue"}}, "does not take the settings")
    broken({"max_length": 64}, "exceeds the model's 32 positions")
    with open(task_path, "w") as f:
        json.dump(good, f)
    with open(os.path.join(directory, "labels.json"), "w") as f:
        json.dump(["a", "b", "c"], f)
    with pytest.raises(model_dir.ModelDirError, match="3 label names for a model whose head has 2"):
        model_dir.FinetunedModel.load(directory)


def test_saved_model_file_holds_no_optimizer_state(tokenizer, tmp_path):
    import keras
    config = BertConfig(vocab_size=20000, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    model = BertClassifier(BertEncoder(config), num_classes=2)   # 1.3 MB of weights
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    model.optimizer.build(model.trainable_variables)
    with_optimizer = str(tmp_path / "with.keras")
    model.save(with_optimizer)
    model_dir.save_model_atomic(model, str(tmp_path))
    assert model.optimizer is not None   # left attached for the caller
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    assert os.path.getsize(with_optimizer) > 2.5 * weight_bytes   # Adam's two moments too
    assert os.path.getsize(tmp_path / "model.keras") < 1.1 * weight_bytes + 128 * 1024
    reloaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    ids = tf.constant([[2, 5, 6, 3]])
    np.testing.assert_allclose(reloaded({"input_ids": ids})["logits"],
                               model({"input_ids": ids})["logits"], atol=1e-6)
