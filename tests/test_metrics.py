"""bert_tf.metrics against references nobody here wrote: scikit-learn (classification), seqeval's
conlleval-style chunking re-derived independently (entities), and the official SQuAD v1.1 / v2.0
evaluation scripts as vendored in tf-models-official (`official/nlp/tools/squad_evaluate_v*.py`)."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_tf import metrics
from bert_tf.data import datasets

sk_metrics = pytest.importorskip("sklearn.metrics")


# ---------------------------------------------------------------------------------- classification

label_lists = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.lists(st.integers(0, 4), min_size=n, max_size=n),
                        st.lists(st.integers(0, 4), min_size=n, max_size=n)))


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=60, deadline=None)
@given(label_lists)
def test_classification_metrics_match_sklearn(pair):
    y_true, y_pred = pair
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sk_metrics.accuracy_score(y_true, y_pred))
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(
        sk_metrics.f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)
    assert metrics.matthews_corrcoef(y_true, y_pred) == pytest.approx(
        sk_metrics.matthews_corrcoef(y_true, y_pred), abs=1e-12)


def test_classification_metrics_string_labels_and_explicit_label_set():
    y_true = ["pos", "neg", "neg", "pos", "neu"]
    y_pred = ["pos", "pos", "neg", "neu", "neu"]
    got = metrics.classification_metrics(y_true, y_pred)
    assert got["accuracy"] == pytest.approx(0.6)
    assert got["macro_f1"] == pytest.approx(sk_metrics.f1_score(y_true, y_pred, average="macro"))
    assert got["mcc"] == pytest.approx(sk_metrics.matthews_corrcoef(y_true, y_pred))
    # An explicit label that never occurs counts as an F1 of 0 (scikit-learn's zero_division=0).
    labels = ["neg", "neu", "pos", "other"]
    assert metrics.macro_f1(y_true, y_pred, labels=labels) == pytest.approx(
        sk_metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    assert metrics.matthews_corrcoef([1, 1, 0], [1, 1, 1]) == 0.0  # constant prediction


def test_classification_metric_errors():
    with pytest.raises(metrics.MetricInputError, match="3 labels but y_pred has 2"):
        metrics.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(metrics.MetricInputError, match="empty"):
        metrics.macro_f1([], [])
    with pytest.raises(metrics.MetricInputError, match="not in the given label list"):
        metrics.macro_f1([0, 1], [0, 2], labels=[0, 1])


# ---------------------------------------------------------------------------------- entities

def _chunks(tags):
    """conlleval chunking, written independently: a chunk starts at B-X, or at I-X when the previous
    tag is O or of another type; it continues through I-X of the same type."""
    chunks, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, t = tag.partition("-")
        continues = prefix == "I" and kind == t
        if kind is not None and not continues:
            chunks.add((kind, start, i - 1))
            kind = None
        if prefix in ("B", "I") and not continues:
            start, kind = i, t
    return chunks


tag_seqs = st.lists(st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), min_size=1,
                    max_size=12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(tag_seqs, st.randoms(use_true_random=False)), min_size=1, max_size=6))
def test_entity_metrics_match_independent_chunk_count(pairs):
    y_true, y_pred = [], []
    for tags, rnd in pairs:
        y_true.append(tags)
        y_pred.append([t if rnd.random() < 0.7 else rnd.choice(["O", "B-PER", "I-LOC"]) for t in tags])
    gold = {(s,) + c for s, tags in enumerate(y_true) for c in _chunks(tags)}
    pred = {(s,) + c for s, tags in enumerate(y_pred) for c in _chunks(tags)}
    tp = len(gold & pred)
    precision = tp / len(pred) if pred else 0.0
    recall = tp / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    got = metrics.entity_metrics(y_true, y_pred)
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    assert got["f1"] == pytest.approx(f1)
    for kind in {c[1] for c in gold}:
        assert got["per_type"][kind]["support"] == sum(1 for c in gold if c[1] == kind)


def test_entity_metrics_strict_mode_ignores_ill_formed_chunks():
    y_true = [["B-PER", "I-PER", "O", "B-LOC"]]
    y_pred = [["B-PER", "I-PER", "O", "I-LOC"]]  # I-LOC after O: an entity for conlleval, not IOB2
    assert metrics.entity_metrics(y_true, y_pred)["f1"] == pytest.approx(1.0)
    strict = metrics.entity_metrics(y_true, y_pred, strict=True)
    assert strict["precision"] == pytest.approx(1.0) and strict["recall"] == pytest.approx(0.5)
    with pytest.raises(metrics.MetricInputError, match="sentence 0: 2 gold tags but 1"):
        metrics.entity_metrics([["O", "O"]], [["O"]])


# ---------------------------------------------------------------------------------- SQuAD

official_v1 = pytest.importorskip("official.nlp.tools.squad_evaluate_v1_1")
official_v2 = pytest.importorskip("official.nlp.tools.squad_evaluate_v2_0")


@pytest.fixture(scope="module")
def fixture_squad():
    return datasets.squad_fixture()


# Hand-written answers for the 5 real questions: exact, articles/punctuation/case differences,
# partial overlap, and an extra id that is not in the dataset.
PREDICTIONS_V1 = {
    "5733be284776f41900661182": "saint bernadette soubirous.",
    "5733be284776f4190066117e": "The golden statue of the Virgin Mary!",
    "5733b1da4776f41900661068": "in 1882",
    "5733b1da4776f4190066106b": "Father Julius Nieuwland",
    "5733b1da4776f41900661067": "early wind tunnel.",
    "not-a-question": "ignored",
}


def test_squad_v1_matches_official_script(fixture_squad):
    ours = metrics.squad(fixture_squad, PREDICTIONS_V1)
    reference = official_v1.evaluate(fixture_squad["data"], PREDICTIONS_V1)
    # The vendored v1.1 copy returns fractions; the official script prints them × 100.
    assert ours["exact_match"] == pytest.approx(100 * reference["exact_match"], abs=1e-9)
    assert ours["f1"] == pytest.approx(100 * reference["final_f1"], abs=1e-9)
    assert ours["total"] == 5
    assert 0 < ours["exact_match"] < ours["f1"] < 100  # the set exercises partial credit


def test_squad_v1_missing_prediction_scores_zero_like_official(fixture_squad):
    partial = dict(list(PREDICTIONS_V1.items())[:3])
    ours = metrics.squad(fixture_squad, partial)
    reference = official_v1.evaluate(fixture_squad["data"], partial)
    assert ours["exact_match"] == pytest.approx(100 * reference["exact_match"])
    assert ours["f1"] == pytest.approx(100 * reference["final_f1"])


def _as_v2(dataset):
    """The fixture turned into SQuAD 2.0: two questions become unanswerable, one gets a gold answer
    that normalizes to nothing ("The", dropped by the v2 rule) next to a real one."""
    data = copy.deepcopy(dataset)
    data["version"] = "v2.0"
    qas = {qa["id"]: qa for art in data["data"] for p in art["paragraphs"] for qa in p["qas"]}
    for qid in qas:
        qas[qid]["is_impossible"] = False
    for qid in ("5733b1da4776f41900661068", "5733be284776f41900661182"):
        qas[qid]["is_impossible"] = True
        qas[qid]["answers"] = []
    context = data["data"][0]["paragraphs"][1]["context"]
    qas["5733b1da4776f41900661067"]["answers"].insert(0, {"text": "In", "answer_start": 0})
    assert context.startswith("In")
    return data


@pytest.mark.parametrize("predictions", [
    {  # unanswerable answered "", unanswerable answered with text, articles/punctuation
        "5733be284776f41900661182": "",
        "5733be284776f4190066117e": "a golden statue of the Virgin Mary",
        "5733b1da4776f41900661068": "1882",
        "5733b1da4776f4190066106b": "Julius Nieuwl,",
        "5733b1da4776f41900661067": "",
    },
    {  # all no-answer
        "5733be284776f41900661182": "", "5733be284776f4190066117e": "", "5733b1da4776f41900661068": "",
        "5733b1da4776f4190066106b": "", "5733b1da4776f41900661067": "the",  # normalizes to ""
    },
])
def test_squad_v2_matches_official_script(fixture_squad, predictions):
    data = _as_v2(fixture_squad)
    ours = metrics.squad(data, predictions)
    reference = official_v2.evaluate(data["data"], predictions)
    assert ours["exact_match"] == pytest.approx(reference["exact"], abs=1e-9)
    assert ours["f1"] == pytest.approx(reference["f1"], abs=1e-9)
    for key in ("HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total"):
        assert ours[key] == pytest.approx(reference[key], abs=1e-9), key


def test_squad_normalization_is_the_official_one():
    for a, b in [("The  Cat!", "cat"), ("an apple, a pear", "apple pear"), ("Théâtre", "théâtre"),
                 ("theater", "theater"), ("U.S.A.", "usa")]:
        assert metrics.normalize_answer(a) == official_v1._normalize_answer(a) == b


def test_squad_rejects_bad_input(fixture_squad):
    with pytest.raises(metrics.MetricInputError, match="'data'"):
        metrics.squad({"articles": []}, {})
    with pytest.raises(metrics.MetricInputError, match="expected answer text"):
        metrics.squad(fixture_squad, {"5733be284776f41900661182": 3})
    data = _as_v2(fixture_squad)
    with pytest.raises(metrics.MetricInputError, match="no gold answers"):
        metrics.squad(data, {}, version_2=False)


def test_entity_metrics_without_seqeval_says_what_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "seqeval", None)  # makes `import seqeval...` raise ImportError
    monkeypatch.setitem(sys.modules, "seqeval.metrics", None)
    with pytest.raises(RuntimeError, match="pip install seqeval"):
        metrics.entity_metrics([["O"]], [["O"]])
