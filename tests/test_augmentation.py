"""Label-wise token replacement (`bert_tf.data.augmentation`) on real WNUT sentences and on a
synthetic set whose replacements are all visible."""

import collections

import pytest

from bert_tf.data import datasets
from bert_tf.data.augmentation import label_wise_replacement


@pytest.fixture(scope="module")
def wnut():
    return datasets.wnut_ner("train")[:200]


def test_every_replacement_keeps_the_tag_and_comes_from_that_tags_tokens(wnut):
    pool = collections.defaultdict(set)
    for tokens, tags in wnut:
        for token, tag in zip(tokens, tags):
            pool[tag].add(token)
    new = label_wise_replacement(wnut, copies=3, rate=0.3, seed=0)
    assert 0 < len(new) <= 3 * len(wnut)
    # Versions come copy by copy in sentence order, each an edit of its own sentence.
    sources = iter([s for _ in range(3) for s in wnut])
    replaced = 0
    for tokens, tags in new:
        source = next(s for s in sources if list(s[1]) == tags and len(s[0]) == len(tokens))
        assert tokens != list(source[0])   # unchanged versions are left out
        for token, old, tag in zip(tokens, source[0], tags):
            assert token in pool[tag]
            replaced += token != old
    assert replaced > 0


def test_the_rate_is_the_share_of_replaced_words():
    # 100 distinct tokens per tag: a replacement draws the same token 1% of the time.
    sentences = [([f"{tag}{i}" for i in range(100)], [tag] * 100) for tag in ("O", "B-person")]
    for rate in (0.1, 0.5):
        new = label_wise_replacement(sentences, copies=20, rate=rate, seed=1)
        changed = sum(a != b for tokens, tags in new
                      for a, b in zip(tokens, [f"{tags[0]}{i}" for i in range(100)]))
        share = changed / (len(new) * 100)
        assert len(new) == 40
        assert abs(share - rate * 0.99) < 0.02, (rate, share)


def test_the_seed_fixes_the_sentences_and_unchanged_versions_are_dropped(wnut):
    assert label_wise_replacement(wnut, 2, 0.3, seed=5) == label_wise_replacement(wnut, 2, 0.3, 5)
    assert label_wise_replacement(wnut, 2, 0.3, seed=5) != label_wise_replacement(wnut, 2, 0.3, 6)
    assert label_wise_replacement(wnut, 0, 0.3, seed=5) == []
    # At a rate of 1% most versions change nothing, and those are not returned.
    few = label_wise_replacement(wnut, 1, 0.01, seed=0)
    assert 0 < len(few) < len(wnut) / 2


@pytest.mark.parametrize("copies, rate, message", [(-1, 0.3, "copies"), (True, 0.3, "copies"),
                                                   (1, 0.0, "rate"), (1, 1.5, "rate"),
                                                   (1, float("nan"), "rate")])
def test_bad_arguments_are_one_clear_error(wnut, copies, rate, message):
    with pytest.raises(ValueError, match=message):
        label_wise_replacement(wnut, copies, rate, seed=0)


def test_untagged_sentences_are_refused():
    with pytest.raises(ValueError, match="a tag for every token"):
        label_wise_replacement([(["a", "b"], None)], 1, 0.3, seed=0)
