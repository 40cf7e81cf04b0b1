"""Texts to embed, and (anchor, positive[, negative]) pairs to train and score sentence embeddings.

Pairs files are CSV, TSV or JSON Lines with a header naming the columns (default `anchor`,
`positive` and, when present, `negative`), read the way classification files are
(`bert_tf.data.classification`). Texts to embed come one per line from a `.txt` file (every line
is a text, an empty line included, so row i of the vectors is line i + 1), or from the `text`
column of a CSV/TSV/JSON Lines file.
"""

from __future__ import annotations

import dataclasses
import os

from bert_tf import fileio
from bert_tf.data.classification import (ClassificationDataError, detect_format, read_records,
                                         text_field)


class TextPairsError(ClassificationDataError):
    """A pairs or texts file that cannot be read (the message names the file and line)."""


@dataclasses.dataclass(frozen=True)
class TextPairs:
    """Examples for sentence embeddings. Unlabeled (texts to embed): `anchors` holds the texts and
    `positives` is None."""
    anchors: list               # [n] str
    positives: list | None      # [n] str
    negatives: list | None      # [n] str (hard negatives), or None
    lines: list                 # [n] the line each record starts on

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def labeled(self) -> bool:
        return self.positives is not None


def _read_text(path: str) -> str:
    try:
        with fileio.open(path, "rb") as f:
            return f.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextPairsError(f"{path}: not UTF-8 ({e})") from None
    except IsADirectoryError:
        raise TextPairsError(f"{path}: is a directory, expected a file") from None


def read_pairs(path: str, anchor_column: str = "anchor", positive_column: str = "positive",
               negative_column: str | None = "negative") -> TextPairs:
    """(anchor, positive[, negative]) records. The negative column is read when the file has it
    (in its first record); then every record needs one. Empty texts are errors."""
    path = os.fspath(path)
    fmt = detect_format(path)
    anchors, positives, negatives, lines = [], [], [], []
    with_negatives = None
    for number, record in read_records(path, _read_text(path), fmt):
        if with_negatives is None:
            with_negatives = negative_column is not None and negative_column in record
        row = [(anchor_column, anchors), (positive_column, positives)]
        if with_negatives:
            row.append((negative_column, negatives))
        for column, into in row:
            value = text_field(path, number, record, column, column)
            if not value.strip():
                raise TextPairsError(f"{path}: line {number}: empty text in column {column!r}")
            into.append(value)
        lines.append(number)
    if not anchors:
        raise TextPairsError(f"{path}: no records")
    return TextPairs(anchors, positives, negatives if with_negatives else None, lines)


def read_texts(path: str, text_column: str = "text") -> TextPairs:
    """Texts to embed: every line of a `.txt` file, or the text column of a CSV/TSV/JSON Lines
    file. A file with no texts at all is an error."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() == ".txt":
        content = _read_text(path)
        texts = content.split("\n")
        if texts and texts[-1] == "":
            texts.pop()   # the newline that ends the last line
        texts = [t.rstrip("\r") for t in texts]
        if not texts:
            raise TextPairsError(f"{path}: no texts (empty file)")
        return TextPairs(texts, None, None, list(range(1, len(texts) + 1)))
    texts, lines = [], []
    for number, record in read_records(path, _read_text(path), detect_format(path)):
        texts.append(text_field(path, number, record, text_column, "text"))
        lines.append(number)
    if not texts:
        raise TextPairsError(f"{path}: no records")
    return TextPairs(texts, None, None, lines)
