"""New training sentences for a distilled student: label-wise token replacement.

A student learns from its teacher's answers, and on a small NER training set (WNUT: ~2,000 tweets)
it runs out of answers long before it matches the teacher. Label-wise token replacement (LwTR;
Dai & Adel 2020, "An Analysis of Simple Data Augmentation for Named Entity Recognition") makes new
sentences from the training ones: each token, with probability `rate`, becomes another training
token that carries the same tag (a person's name for a person's name, a word outside any entity
for another such word), and the tags stay. Each new sentence is a new context for the teacher to
tag, so `bert-tf distill --augment` gives the student the teacher's soft tags on it; where a
replacement made the gold tag wrong, the soft target (weighted by --alpha) carries the teacher's
reading.
"""

from __future__ import annotations

import collections
import random


def label_wise_replacement(sentences, copies: int, rate: float, seed: int) -> list:
    """`copies` new versions of every tagged sentence in `sentences` [(tokens, tags)], in order
    (every sentence's first version, then every second one, ...): each token, with probability
    `rate`, replaced by a token drawn from all the training tokens with its tag (with repeats, so
    the common ones are drawn more often), each tag kept. A version in which no token changed is
    left out: it would only repeat its sentence. The same `seed` gives the same sentences."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise ValueError(f"copies must be an integer >= 0, got {copies!r}")
    if not 0 < rate <= 1:
        raise ValueError(f"the replacement rate must be in (0, 1], got {rate!r}")
    by_tag = collections.defaultdict(list)
    for tokens, tags in sentences:
        if tags is None or len(tags) != len(tokens):
            raise ValueError("label-wise replacement needs a tag for every token")
        for token, tag in zip(tokens, tags):
            by_tag[tag].append(token)
    rng = random.Random(seed)
    out = []
    for _ in range(copies):
        for tokens, tags in sentences:
            new = [rng.choice(by_tag[tag]) if rng.random() < rate else token
                   for token, tag in zip(tokens, tags)]
            if new != list(tokens):
                out.append((new, list(tags)))
    return out


__all__ = ["label_wise_replacement"]
