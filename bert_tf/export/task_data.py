"""Real texts for calibration and verification, from the task's own dataset (`bert_tf.data`).

A fine-tuning output's task.json may name its dataset (`"dataset": "rotten_tomatoes"`); otherwise
the task decides: classify/regress/embed -> rotten_tomatoes, ner -> wnut_ner, squad -> squad_fixture.
"""

from __future__ import annotations

from bert_tf.export.errors import ExportError

# task type (task.json's "task") -> its dataset
DEFAULT_DATASET = {"classify": "rotten_tomatoes", "regress": "rotten_tomatoes",
                   "ner": "wnut_ner", "squad": "squad_fixture", "embed": "rotten_tomatoes"}


def task_texts(dataset: str, split: str, limit: int | None = None) -> tuple:
    """(texts, gold label NAMES or None): strings, or (question, context) tuples for QA.

    Names, not ids: a fine-tuned model numbers its labels its own way (labels.json; a CSV reader
    sorts them), so callers map names to the model's ids with `gold_label_ids`."""
    from bert_tf.data import datasets
    if dataset == "rotten_tomatoes":
        rows = datasets.rotten_tomatoes(split)
        names = datasets.label_names("rotten_tomatoes")
        texts, gold = [t for t, _ in rows], [names[label] for _, label in rows]
    elif dataset == "wnut_ner":
        texts, gold = [" ".join(tokens) for tokens, _ in datasets.wnut_ner(split)], None
    elif dataset == "squad_fixture":
        texts, gold = [], None
        for article in datasets.squad_fixture()["data"]:
            for paragraph in article["paragraphs"]:
                texts += [(qa["question"], paragraph["context"]) for qa in paragraph["qas"]]
    else:
        raise ExportError(f"no texts for dataset {dataset!r}; known: {sorted(set(DEFAULT_DATASET.values()))}")
    if limit is not None:
        texts = texts[:limit]
        gold = gold[:limit] if gold is not None else None
    return texts, gold


def gold_label_ids(gold_names, model_labels, dataset: str) -> list:
    """Maps gold label names to the model's label ids; a name the model lacks is an error."""
    index = {name: i for i, name in enumerate(model_labels or ())}
    unknown = sorted(set(gold_names) - set(index))
    if unknown:
        raise ExportError(f"the model's labels {list(model_labels or ())} do not include {unknown} "
                          f"from dataset {dataset!r}; pass --dataset data that matches the model")
    return [index[name] for name in gold_names]
