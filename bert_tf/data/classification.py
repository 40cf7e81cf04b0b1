"""Text classification files: CSV, TSV or JSON Lines with a text column (or a text pair) and a label.

Format comes from the extension (`.csv`, `.tsv`, `.jsonl`/`.ndjson`) unless given. CSV/TSV need a
header row naming the columns. TSV is read the way GLUE files are meant to be read (tab-delimited,
no quoting: a `"` is an ordinary character); CSV uses standard quoting so texts may hold commas and
newlines. Labels are strings (JSON numbers and booleans become their text, other types are errors);
the label vocabulary is either given (dev/test: an unknown label is an error, never dropped) or
built from the file, sorted, numerically when every label is an integer so "10" comes after "9".
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

from bert_tf import fileio
from bert_tf.config import write_text_atomic

FORMATS = ("csv", "tsv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class ClassificationDataError(ValueError):
    """A classification file is malformed: missing column, bad record, unknown label."""


@dataclasses.dataclass(frozen=True)
class ClassificationData:
    texts: list            # [n] str
    text_pairs: list | None  # [n] str, or None for single-text tasks
    labels: list | None    # [n] int ids into label_names, or None when the file has no labels
    label_names: tuple     # id -> label string
    lines: list            # [n] the line each record starts on, for error reports downstream

    def __len__(self) -> int:
        return len(self.texts)


def detect_format(path: str, format: str | None = None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ClassificationDataError(f"format must be one of {FORMATS}, got {format!r}")
        return format
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in _EXTENSIONS:
        raise ClassificationDataError(f"{path}: cannot tell the format from the extension {ext!r}; "
                                      f"use .csv, .tsv or .jsonl (or pass format=)")
    return _EXTENSIONS[ext]


def read_records(path: str, text: str, format: str):
    """Yields (line number, {column: str value}) for each record."""
    if format == "jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ClassificationDataError(f"{path}: line {number}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ClassificationDataError(f"{path}: line {number}: expected a JSON object, got "
                                              f"{type(record).__name__}")
            yield number, record
        return
    if format == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ClassificationDataError(f"{path}: empty file (a header row is required)")
        if len(set(header)) != len(header):
            raise ClassificationDataError(f"{path}: line 1: duplicate column names in header {header}")
        start = reader.line_num + 1
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise ClassificationDataError(f"{path}: line {start}: {len(row)} fields, but the header "
                                              f"has {len(header)} ({header})")
            yield start, dict(zip(header, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise ClassificationDataError(f"{path}: line {reader.line_num}: malformed {format.upper()} "
                                      f"({e})") from None


def text_field(path, number, record, column, what):
    if column not in record:
        raise ClassificationDataError(f"{path}: line {number}: missing {what} column {column!r} "
                                      f"(columns: {sorted(record)})")
    value = record[column]
    if isinstance(value, (bool, int, float)):
        # JSON numbers: regression scores are floats; repr round-trips a float exactly.
        value = str(value).lower() if isinstance(value, bool) else \
            repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise ClassificationDataError(f"{path}: line {number}: {what} column {column!r} holds "
                                      f"{type(value).__name__}, expected text")
    return value


def label_vocabulary(labels) -> tuple:
    """Sorted distinct labels; integer-looking labels sort by value ("2" before "10")."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


def read_classification(path: str, text_column: str = "text", label_column: str | None = "label",
                        text_pair_column: str | None = None, label_names=None,
                        format: str | None = None) -> ClassificationData:
    """Reads a classification file into texts (+ pairs) and integer label ids.

    `label_column=None` reads unlabeled text (for prediction). `label_names` fixes the vocabulary
    (pass the training file's); otherwise it is built from this file with `label_vocabulary`.
    Empty texts and empty labels are errors, as are records missing a column.
    """
    path = os.fspath(path)
    format = detect_format(path, format)
    try:
        with fileio.open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ClassificationDataError(f"{path}: not UTF-8 ({e})") from None
    texts, pairs, raw_labels, lines = [], [], [], []
    for number, record in read_records(path, text, format):
        value = text_field(path, number, record, text_column, "text")
        if not value.strip():
            raise ClassificationDataError(f"{path}: line {number}: empty text in column {text_column!r}")
        texts.append(value)
        if text_pair_column is not None:
            pair = text_field(path, number, record, text_pair_column, "text pair")
            if not pair.strip():
                raise ClassificationDataError(f"{path}: line {number}: empty text in column "
                                              f"{text_pair_column!r}")
            pairs.append(pair)
        if label_column is not None:
            label = text_field(path, number, record, label_column, "label").strip()
            if not label:
                raise ClassificationDataError(f"{path}: line {number}: empty label in column "
                                              f"{label_column!r}")
            raw_labels.append(label)
        lines.append(number)
    if not texts:
        raise ClassificationDataError(f"{path}: no records")
    if label_names is None:
        label_names = label_vocabulary(raw_labels)
    label_names = tuple(str(name) for name in label_names)
    labels = None
    if label_column is not None:
        index = {name: i for i, name in enumerate(label_names)}
        labels = []
        for label, number in zip(raw_labels, lines):
            if label not in index:
                raise ClassificationDataError(f"{path}: line {number}: label {label!r} is not one of "
                                              f"the known labels {list(label_names)}")
            labels.append(index[label])
    return ClassificationData(texts, pairs if text_pair_column is not None else None, labels,
                              label_names, lines)


def format_classification(rows, format: str, columns=("text", "label")) -> str:
    """Serializes rows (tuples matching `columns`) as CSV (quoted as needed), TSV or JSON Lines."""
    if format not in FORMATS:
        raise ClassificationDataError(f"format must be one of {FORMATS}, got {format!r}")
    if format == "jsonl":
        return "".join(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO(newline="")
    if format == "tsv":
        for n, row in enumerate(rows):
            for value in row:
                if any(ch in str(value) for ch in "\t\n\r"):
                    raise ClassificationDataError(f"row {n}: {value!r} holds a tab or newline, which "
                                                  "TSV cannot carry; write CSV or JSON Lines instead")
        writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None,
                            quotechar=None, lineterminator="\n")
    else:
        writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def write_classification(path: str, rows, columns=("text", "label"), format: str | None = None) -> None:
    """Writes rows atomically in the format the extension names; `read_classification` reads it back."""
    path = os.fspath(path)
    write_text_atomic(path, format_classification(rows, detect_format(path, format), columns))
