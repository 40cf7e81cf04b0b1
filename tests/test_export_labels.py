"""Verification data is matched to a model by label NAME: a model trained from a CSV numbers
"fresh"/"rotten" alphabetically, the built-in dataset as ("rotten", "fresh")."""

import pytest

from bert_tf.data import datasets
from bert_tf.export.task_data import gold_label_ids, task_texts
from bert_tf.export.errors import ExportError


@pytest.mark.slow
def test_gold_labels_follow_the_models_label_order():
    texts, gold = task_texts("rotten_tomatoes", "test", limit=50)
    rows = datasets.rotten_tomatoes("test")[:50]
    assert texts == [t for t, _ in rows]
    assert set(gold) <= {"rotten", "fresh"}
    as_dataset = gold_label_ids(gold, ("rotten", "fresh"), "rotten_tomatoes")
    alphabetical = gold_label_ids(gold, ("fresh", "rotten"), "rotten_tomatoes")
    assert as_dataset == [label for _, label in rows]
    assert alphabetical == [1 - label for _, label in rows]
    with pytest.raises(ExportError, match="do not include"):
        gold_label_ids(gold, ("negative", "positive"), "rotten_tomatoes")
