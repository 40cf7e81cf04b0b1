"""`bert-tf evaluate --report DIR` (issue 22 item 4): report.json whose numbers are the metric
functions' own, and the task's charts as PNGs, for every task."""

import json
import os

import numpy as np
import pytest

import bert_tf.cli
from bert_tf import metrics
from tests.test_curves import png_size
from tests.test_train_equals_serve import (CONTEXTS, NER_LABELS, QUESTIONS, TEXTS,
                                           write_random_model_dir)

pytestmark = pytest.mark.slow


def evaluate_with_report(model, data, out, capsys):
    capsys.readouterr()
    assert bert_tf.cli.main(["evaluate", "--model", model, "--data", data, "--report", out]) == 0
    scores = json.loads(capsys.readouterr().out)
    report = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    assert json.dumps(report["metrics"], sort_keys=True) == json.dumps(scores, sort_keys=True)
    pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    for name in pngs:
        width, height = png_size(os.path.join(out, name))
        assert (width, height) == (700, 500) and os.path.getsize(os.path.join(out, name)) > 10_000
    return report, pngs


@pytest.fixture(scope="module")
def vocabulary(minilm_vocab):
    from bert_tf.text.vocabulary import read_vocabulary
    return read_vocabulary(minilm_vocab)


def predicted(model, data, tmp_path, capsys):
    out = str(tmp_path / "predictions.jsonl")
    assert bert_tf.cli.main(["predict", "--model", model, "--data", data, "--output", out]) == 0
    return [json.loads(line) for line in open(out, encoding="utf-8")]


def test_classification_report_is_the_confusion_matrix_of_predict(tmp_path, vocabulary, capsys):
    labels = ("negative", "neutral", "positive")
    model = write_random_model_dir(str(tmp_path / "m"), "classify", {}, labels, vocabulary, True, 0)
    texts = TEXTS * 4
    gold = [labels[i % 3] for i in range(len(texts))]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": g}) + "\n" for t, g in zip(texts, gold)))
    report, pngs = evaluate_with_report(model, str(data), str(tmp_path / "report"), capsys)
    assert pngs == ["confusion_matrix.png", "per_class.png"]
    rows = predicted(model, str(data), tmp_path, capsys)
    guessed = [r["label"] for r in rows]
    matrix, _ = metrics.confusion_matrix(gold, guessed, labels=list(labels))
    assert report["confusion_matrix"] == matrix.tolist() and report["labels"] == list(labels)
    expected = metrics.per_class_metrics(gold, guessed, labels=list(labels))
    assert report["per_class"].keys() == expected.keys()
    for label in labels:
        assert report["per_class"][label] == pytest.approx(expected[label])
    assert report["metrics"]["accuracy"] == pytest.approx(np.trace(matrix) / len(texts))


def test_ner_report_per_entity_type(tmp_path, vocabulary, capsys):
    model = write_random_model_dir(str(tmp_path / "m"), "ner", {"stride": 10}, NER_LABELS,
                                   vocabulary, True, 3)
    sentences = [t.split() for t in TEXTS if t.split()]
    tags = [["B-PER" if w[0].isupper() else "O" for w in s] for s in sentences]
    data = tmp_path / "test.conll"
    data.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s, g)) + "\n"
                            for s, g in zip(sentences, tags)))
    report, pngs = evaluate_with_report(model, str(data), str(tmp_path / "report"), capsys)
    assert pngs == ["per_entity_type.png"]
    rows = predicted(model, str(data), tmp_path, capsys)
    expected = metrics.entity_metrics(tags, [r["tags"] for r in rows])
    assert {k: v for k, v in report["metrics"].items() if k != "per_type"} == pytest.approx(
        {k: v for k, v in expected.items() if k != "per_type"})
    for name, scores in expected["per_type"].items():
        assert report["metrics"]["per_type"][name] == pytest.approx(scores)
    assert report["metrics"]["per_type"]["PER"]["support"] == sum(g.count("B-PER") for g in tags)


def test_squad_report_by_answer_length(tmp_path, vocabulary, capsys):
    model = write_random_model_dir(str(tmp_path / "m"), "squad", {
        "doc_stride": 8, "max_query_length": 8, "max_answer_length": 12, "n_best_size": 5},
        (), vocabulary, True, 4)
    answers = ["Berlin", "researchers at Google", "crêpes and tea", "nothing"]
    paragraphs = [{"context": c, "qas": [{"id": f"q{i}", "question": q, "answers": [
        {"text": a, "answer_start": c.index(a)}]}]}
        for i, (q, c, a) in enumerate(zip(QUESTIONS, CONTEXTS, answers))]
    dataset = {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}
    data = tmp_path / "dev.json"
    data.write_text(json.dumps(dataset))
    report, pngs = evaluate_with_report(model, str(data), str(tmp_path / "report"), capsys)
    assert pngs == ["by_answer_length.png"]
    assert [(b["bin"], b["total"]) for b in report["by_answer_length"]] == [("1", 2), ("3-4", 2)]
    assert sum(b["f1"] * b["total"] for b in report["by_answer_length"]) / 4 == \
        pytest.approx(report["metrics"]["f1"])


def test_embed_report_recall_at_k(tmp_path, vocabulary, capsys):
    model = write_random_model_dir(str(tmp_path / "m"), "embed", {"pooling": "mean"}, (),
                                   vocabulary, True, 5)
    data = tmp_path / "pairs.csv"
    data.write_text("anchor,positive\n" + "".join(f'"{a}","{b}"\n' for a, b in
                                                  zip(QUESTIONS, CONTEXTS)))
    report, pngs = evaluate_with_report(model, str(data), str(tmp_path / "report"), capsys)
    assert pngs == ["recall_at_k.png"]
    curve = [report["recall_at_k"][str(k)] for k in range(1, 11)]
    assert curve == sorted(curve) and curve[0] == report["metrics"]["recall_at_1"]
    assert curve[3] == 1.0   # 4 candidates: every answer is in the top 4


def test_report_path_that_is_a_file_is_one_clear_error(tmp_path, vocabulary, capsys):
    model = write_random_model_dir(str(tmp_path / "m"), "regress", {}, (), vocabulary, True, 6)
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": i / 3}) + "\n"
                            for i, t in enumerate(TEXTS)))
    report, pngs = evaluate_with_report(model, str(data), str(tmp_path / "report"), capsys)
    assert pngs == ["predicted_vs_gold.png"] and "pearson" in report["metrics"]
    (tmp_path / "a_file").write_text("x")
    assert bert_tf.cli.main(["evaluate", "--model", model, "--data", str(data), "--report",
                             str(tmp_path / "a_file")]) == 2
    assert "--report" in capsys.readouterr().err
