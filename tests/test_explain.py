"""`bert-tf explain` (issue 22 item 2): attention maps and integrated-gradient attributions for one
input of a fine-tuned model directory, with the completeness check, and its bad inputs."""

import json
import os

import numpy as np
import pytest

import bert_tf.cli
from bert_tf.explain import explain, merge_words, word_attention
from bert_tf.tasks import model_dir
from tests.test_curves import png_size
from tests.test_train_equals_serve import LONG, NER_LABELS, write_random_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vocabulary(minilm_vocab):
    from bert_tf.text.vocabulary import read_vocabulary
    return read_vocabulary(minilm_vocab)


@pytest.fixture(scope="module")
def minilm_classifier(tmp_path_factory, minilm_dir, vocabulary):
    """The real MiniLM encoder with a fresh 2-label head, as a model directory."""
    import keras

    from bert_tf.models import BertClassifier
    keras.utils.set_random_seed(0)
    directory = str(tmp_path_factory.mktemp("minilm_classifier"))
    model_dir.save_model_atomic(BertClassifier.from_pretrained(minilm_dir, num_classes=2),
                                directory)
    model_dir.write_labels(directory, ["negative", "positive"])
    model_dir.write_vocab(directory, vocabulary)
    model_dir.write_task(directory, {"task": "classify", "max_length": 32, "lowercase": True,
                                     "task_settings": {}})
    return directory


def run_explain(model, text, out, *extra):
    assert bert_tf.cli.main(["explain", "--model", model, text, "--out", str(out), *extra]) == 0
    return json.load(open(os.path.join(out, "explanation.json"), encoding="utf-8"))


def test_real_minilm_attributions_are_complete_and_pictures_written(minilm_classifier, tmp_path):
    out = tmp_path / "explain"
    report = run_explain(minilm_classifier, "A truly unwatchable, tedious film.", out)
    assert sorted(os.listdir(out)) == ["attention_grid.png", "attention_layer_5.png",
                                       "attributions.png", "explanation.json"]
    assert png_size(out / "attention_grid.png")[0] > 1000     # 12 heads across
    for name in ("attention_grid.png", "attention_layer_5.png", "attributions.png"):
        assert os.path.getsize(out / name) > 10_000
    attribution = report["attribution"]
    assert attribution["relative_error"] <= 0.02            # completeness, 64 steps
    assert sum(attribution["tokens"]) == pytest.approx(attribution["sum"], abs=1e-4)
    assert sum(attribution["words"]) == pytest.approx(attribution["sum"], abs=1e-4)
    assert attribution["target"] == f"the logit of {report['answer']['labels']!r}"
    assert report["words"] == ["[CLS]", "a", "truly", "unwatchable", ",", "tedious", "film",
                               ".", "[SEP]"]
    assert report["tokens"][3:6] == ["un", "##watch", "##able"]
    assert (report["layers"], report["heads"]) == (6, 12)
    assert report["truncated"] is False


def test_attention_is_the_encoders_and_words_keep_rows_summing_to_one(minilm_classifier,
                                                                      minilm_dir):
    import bert_tf
    loaded = model_dir.FinetunedModel.load(minilm_classifier)
    explanation = explain(loaded, {"text": "Hello, my dog is cute"}, steps=8)
    encoder = bert_tf.BertEncoder.from_pretrained(minilm_dir, output_attentions=True)
    ids = loaded.tokenizer(["Hello, my dog is cute"])
    reference = np.asarray(encoder({k: np.asarray(v)[:, :8] for k, v in ids.items()})["attentions"])
    np.testing.assert_allclose(explanation.attention, reference[:, 0], atol=1e-5)
    words = merge_words(["[CLS]", "un", "##watch", "##able", "film", "[SEP]"])
    assert words == [("[CLS]", [0]), ("unwatchable", [1, 2, 3]), ("film", [4]), ("[SEP]", [5])]
    merged = word_attention(np.full((1, 6, 6), 1 / 6), words)
    np.testing.assert_allclose(merged.sum(-1), 1.0)


def test_other_tasks_and_truncation(tmp_path, vocabulary):
    ner = write_random_model_dir(str(tmp_path / "ner"), "ner", {"stride": 10}, NER_LABELS,
                                 vocabulary, True, 1)
    report = run_explain(ner, LONG, tmp_path / "ner_out", "--layer", "0", "--pieces")
    assert "attribution" not in report and report["truncated"] is False
    assert report["windows"] > 1   # NER covers a long text with windows; attention: the first
    assert sorted(os.listdir(tmp_path / "ner_out")) == [
        "attention_grid.png", "attention_layer_0.png", "explanation.json", "spans.png"]
    count = report["answer"]["entity_count"]
    assert count > 0   # the wide random initializer predicts some entities
    for start, end, text in zip(report["answer"]["entity_starts"][:count],
                                report["answer"]["entity_ends"][:count],
                                report["answer"]["entity_texts"][:count]):
        assert LONG[start:end] == text
    regress = write_random_model_dir(str(tmp_path / "reg"), "regress", {}, (), vocabulary, True, 2)
    report = run_explain(regress, "ok then " + LONG, tmp_path / "reg_out", "--steps", "128")
    assert report["attribution"]["target"] == "the score"
    assert report["truncated"] is True and len(report["tokens"]) == 32   # as predict cuts it
    assert report["attribution"]["relative_error"] <= 0.02


def test_bad_inputs_are_one_clear_error(tmp_path, vocabulary, minilm_classifier, capsys):
    import shutil
    no_vocab = str(tmp_path / "no_vocab")
    shutil.copytree(minilm_classifier, no_vocab)
    os.remove(os.path.join(no_vocab, "vocab.txt"))
    squad = write_random_model_dir(str(tmp_path / "qa"), "squad", {
        "doc_stride": 8, "max_query_length": 8, "max_answer_length": 12, "n_best_size": 5},
        (), vocabulary, True, 3)
    cases = [
        (["explain", "--model", minilm_classifier, "  "], "the text is empty"),
        (["explain", "--model", minilm_classifier, "ok", "--layer", "6"], "--layer 6 is out of range"),
        (["explain", "--model", minilm_classifier, "ok", "--text-pair", "x"], "drop --text-pair"),
        (["explain", "--model", squad, "Who?"], "pass --text-pair"),
        (["explain", "--model", str(tmp_path), "ok"], "task.json"),
        (["explain", "--model", minilm_classifier, "ok", "--steps", "0"], "--steps"),
        (["explain", "--model", no_vocab, "ok"], "vocab.txt: missing"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert bert_tf.cli.main(argv + ["--out", str(tmp_path / "x")]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, (argv, err)
