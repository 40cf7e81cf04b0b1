"""Evaluation metrics for fine-tuned BERT tasks: classification, entity tagging, extractive QA.

Classification metrics are plain numpy (no scikit-learn at run time) and follow scikit-learn's
definitions exactly (tests compare against it). Entity-level scores come from `seqeval`, the
conlleval-compatible reference everyone reports, imported only when asked for. SQuAD scores follow
the official v1.1 and v2.0 evaluation scripts line for line (normalization, max over gold answers,
the v2.0 no-answer rule), on the same 0-100 scale.
"""

from __future__ import annotations

import collections
import logging
import re
import string
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)


class MetricInputError(ValueError):
    """The inputs to a metric do not fit together (lengths, types, empty)."""


# --------------------------------------------------------------------------------------------------
# Classification


def _label_arrays(y_true, y_pred) -> tuple:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise MetricInputError(f"labels must be 1-D sequences, got shapes {y_true.shape} and {y_pred.shape}")
    if len(y_true) != len(y_pred):
        raise MetricInputError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise MetricInputError("cannot score an empty set of predictions")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, labels: Sequence | None = None) -> tuple:
    """Returns (matrix [n_labels, n_labels] with rows = true label, columns = predicted, labels).

    `labels` defaults to the sorted union of the labels seen in either argument (scikit-learn's rule).
    """
    y_true, y_pred = _label_arrays(y_true, y_pred)
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    labels = np.asarray(labels)
    index = {label: i for i, label in enumerate(labels.tolist())}
    unknown = sorted({v for v in np.concatenate([y_true, y_pred]).tolist() if v not in index}, key=str)
    if unknown:
        raise MetricInputError(f"labels {unknown[:5]} are not in the given label list {labels.tolist()}")
    t = np.array([index[v] for v in y_true.tolist()], dtype=np.int64)
    p = np.array([index[v] for v in y_pred.tolist()], dtype=np.int64)
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, (t, p), 1)
    return matrix, labels


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _label_arrays(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def macro_f1(y_true, y_pred, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-class F1 over the labels in either argument (or the given `labels`).

    A class with no true and no predicted examples (only possible with explicit `labels`) scores 0,
    as scikit-learn's `zero_division` default does.
    """
    matrix, _ = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(matrix).astype(np.float64)          # [n_labels]
    fp = matrix.sum(axis=0) - tp                      # predicted as the class, but not it
    fn = matrix.sum(axis=1) - tp                      # the class, predicted as something else
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.mean(f1))


def per_class_metrics(y_true, y_pred, labels: Sequence | None = None) -> dict:
    """{label: {"precision", "recall", "f1", "support"}} from the confusion matrix (0 where a
    denominator is 0, as scikit-learn's `zero_division` default)."""
    matrix, labels = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)
    precision, recall = ratio(tp, predicted), ratio(tp, actual)
    f1 = ratio(2 * precision * recall, precision + recall)
    return {label: {"precision": float(p), "recall": float(r), "f1": float(f),
                    "support": int(n)}
            for label, p, r, f, n in zip(labels.tolist(), precision, recall, f1, actual)}


def matthews_corrcoef(y_true, y_pred) -> float:
    """Matthews correlation coefficient, the multi-class form (Gorodkin's R_K) scikit-learn uses.

    With C the confusion matrix, t = row sums, p = column sums, c = trace(C), s = total:
    (c·s − t·p) / sqrt((s² − p·p)(s² − t·t)); 0 when either factor is 0 (a constant prediction).
    """
    matrix, _ = confusion_matrix(y_true, y_pred)
    matrix = matrix.astype(np.float64)
    t_sum = matrix.sum(axis=1)
    p_sum = matrix.sum(axis=0)
    n_correct = np.trace(matrix)
    n_samples = matrix.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples ** 2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples ** 2 - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def classification_metrics(y_true, y_pred) -> dict:
    """{"accuracy", "macro_f1", "mcc"} for one set of predictions."""
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred),
            "mcc": matthews_corrcoef(y_true, y_pred)}


# --------------------------------------------------------------------------------------------------
# Entity tagging (seqeval)


def _seqeval():
    try:
        import seqeval.metrics  # noqa: F401  (lazy: only entity scoring needs it)
        import seqeval.scheme  # noqa: F401
    except ImportError:
        raise RuntimeError("entity-level NER metrics need the `seqeval` package: "
                           "pip install seqeval (it is in bert_tf's [test] extra)") from None
    return seqeval


def entity_metrics(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]],
                   strict: bool = False) -> dict:
    """Entity-level micro precision/recall/F1 (0-1) plus per-type scores, from BIO tag sequences.

    `strict=False` is conlleval's rule (what CoNLL/WNUT papers report): an I-X after O or after
    another type starts a new X entity. `strict=True` scores IOB2 chunks only (seqeval's strict
    mode), so such ill-formed I- tags never form an entity.
    Returns {"precision", "recall", "f1", "per_type": {type: {"precision", "recall", "f1",
    "support"}}}.
    """
    if len(y_true) != len(y_pred):
        raise MetricInputError(f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise MetricInputError("cannot score an empty set of sentences")
    y_true = [list(s) for s in y_true]
    y_pred = [list(s) for s in y_pred]
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise MetricInputError(f"sentence {i}: {len(t)} gold tags but {len(p)} predicted tags")
    seqeval = _seqeval()
    kwargs = {"mode": "strict", "scheme": seqeval.scheme.IOB2} if strict else {}
    with warnings.catch_warnings():
        # seqeval averages over an empty type list when no sentence has an entity (numpy warns).
        warnings.simplefilter("ignore", RuntimeWarning)
        report = seqeval.metrics.classification_report(y_true, y_pred, output_dict=True,
                                                       zero_division=0, **kwargs)
    per_type = {name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                       "f1": float(v["f1-score"]), "support": int(v["support"])}
                for name, v in report.items() if not name.endswith(" avg")}
    return {
        "precision": float(seqeval.metrics.precision_score(y_true, y_pred, zero_division=0, **kwargs)),
        "recall": float(seqeval.metrics.recall_score(y_true, y_pred, zero_division=0, **kwargs)),
        "f1": float(seqeval.metrics.f1_score(y_true, y_pred, zero_division=0, **kwargs)),
        "per_type": per_type,
    }


# --------------------------------------------------------------------------------------------------
# SQuAD (official evaluation scripts v1.1 and v2.0)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (the official rule)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


_PUNCTUATION = frozenset(string.punctuation)


def _tokens(s: str) -> list:
    return normalize_answer(s).split() if s else []


def squad_exact(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str, version_2: bool = False) -> float:
    """Token-overlap F1 of normalized answers. v2.0 adds one rule: when either side normalizes to no
    tokens (a no-answer), F1 is 1 if both do and 0 otherwise; v1.1 scores that case 0."""
    pred_toks, gold_toks = _tokens(prediction), _tokens(gold)
    if version_2 and (not gold_toks or not pred_toks):
        return float(gold_toks == pred_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _articles(dataset) -> list:
    if isinstance(dataset, Mapping):
        if "data" not in dataset:
            raise MetricInputError("a SQuAD dataset is a dict with a 'data' list of articles")
        return dataset["data"]
    return list(dataset)


def is_squad_v2(dataset) -> bool:
    """v2.0 when the file says so (`"version": "v2.0"`) or any question carries `is_impossible`."""
    if isinstance(dataset, Mapping) and str(dataset.get("version", "")).lstrip("v").startswith("2"):
        return True
    return any("is_impossible" in qa for article in _articles(dataset)
               for paragraph in article["paragraphs"] for qa in paragraph["qas"])


def squad(dataset, predictions: Mapping[str, str], version_2: bool | None = None) -> dict:
    """SQuAD exact match and F1 (0-100) of `predictions` (question id → answer text).

    `dataset` is the parsed SQuAD JSON (the dict with "data", or its "data" list). `version_2`
    defaults to `is_squad_v2(dataset)`. As in the official scripts each score is the max over the
    gold answers; an unanswered question scores 0 (v1.1 counts it, with a warning). v2.0: gold
    answers that normalize to nothing are dropped and a question left with none is a no-answer
    question, whose only correct prediction is ""; the result adds HasAns_* / NoAns_* breakdowns
    (exact, f1, total) like the official v2.0 script.
    """
    exact, f1, has_answer, _ = squad_per_question(dataset, predictions, version_2)

    def summary(qids: Iterable[str]) -> tuple:
        qids = list(qids)
        return (100.0 * sum(exact[q] for q in qids) / len(qids),
                100.0 * sum(f1[q] for q in qids) / len(qids), len(qids))

    em, f, total = summary(exact)
    result = {"exact_match": em, "f1": f, "total": total}
    if has_answer:
        for prefix, wanted in (("HasAns", True), ("NoAns", False)):
            qids = [q for q, has in has_answer.items() if has == wanted]
            if qids:
                em, f, total = summary(qids)
                result.update({f"{prefix}_exact": em, f"{prefix}_f1": f, f"{prefix}_total": total})
    return result


ANSWER_LENGTH_BINS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, None))


def squad_by_answer_length(dataset, predictions: Mapping[str, str],
                           version_2: bool | None = None) -> list:
    """EM and F1 (0-100) by the length in words of the (first, normalized) gold answer:
    [{"bin": "1" | "2" | "3-4" | "5-8" | "9+" | "no answer", "exact_match", "f1", "total"}],
    bins without questions left out. The same per-question scores as `squad`."""
    exact, f1, has_answer, lengths = squad_per_question(dataset, predictions, version_2)
    rows = []
    groups = [(f"{low}" if low == high else f"{low}-{high}" if high else f"{low}+",
               [q for q, n in lengths.items() if n and low <= n and (high is None or n <= high)])
              for low, high in ANSWER_LENGTH_BINS]
    groups.append(("no answer", [q for q, n in lengths.items() if n == 0]))
    for name, qids in groups:
        if qids:
            rows.append({"bin": name, "total": len(qids),
                         "exact_match": 100.0 * sum(exact[q] for q in qids) / len(qids),
                         "f1": 100.0 * sum(f1[q] for q in qids) / len(qids)})
    return rows


def squad_per_question(dataset, predictions: Mapping[str, str],
                       version_2: bool | None = None) -> tuple:
    """(exact {qid: 0/1}, f1 {qid: 0-1}, has_answer {qid: bool} (v2.0 only, else {}), gold
    answer length {qid: words of the first normalized gold answer, 0 for no answer}): the
    official scripts' per-question scores (max over the gold answers)."""
    articles = _articles(dataset)
    if version_2 is None:
        version_2 = is_squad_v2(dataset)
    if not isinstance(predictions, Mapping):
        raise MetricInputError("predictions must map question id -> answer text")
    exact, f1, has_answer, lengths = {}, {}, {}, {}
    missing = 0
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qid = qa["id"]
                golds = [a["text"] for a in qa["answers"]]
                if version_2:
                    golds = [g for g in golds if normalize_answer(g)] or [""]
                    has_answer[qid] = golds != [""]
                elif not golds:
                    raise MetricInputError(f"question {qid} has no gold answers (SQuAD v1.1 needs at "
                                           "least one; pass version_2=True for v2.0 data)")
                words = len(normalize_answer(golds[0]).split())
                # v1.1 always has an answer, even one that normalizes to nothing ("the")
                lengths[qid] = words if version_2 else max(1, words)
                prediction = predictions.get(qid)
                if prediction is None:
                    missing += 1
                    exact[qid] = f1[qid] = 0.0
                    continue
                if not isinstance(prediction, str):
                    raise MetricInputError(f"prediction for question {qid} is {type(prediction).__name__}, "
                                           "expected answer text (str)")
                exact[qid] = float(max(squad_exact(prediction, g) for g in golds))
                f1[qid] = max(squad_f1(prediction, g, version_2) for g in golds)
    if not exact:
        raise MetricInputError("the SQuAD dataset has no questions")
    if missing:
        logger.warning("%d of %d questions have no prediction and score 0", missing, len(exact))
    return exact, f1, has_answer, lengths


# ---------------------------------------------------------------------- regression
def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as scipy.stats.rankdata."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def pearson(y_true, y_pred) -> float:
    """Pearson correlation; 0.0 when either side is constant (no linear relation to measure)."""
    x, y = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def regression_metrics(y_true, y_pred) -> dict:
    """Pearson and Spearman correlation (GLUE STS-B's pair) and the mean squared error."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"expected two [n] arrays, got {y_true.shape} and {y_pred.shape}")
    return {"pearson": pearson(y_true, y_pred),
            "spearman": pearson(_ranks(y_true), _ranks(y_pred)),
            "mse": float(np.mean((y_true - y_pred) ** 2)) if len(y_true) else 0.0}
