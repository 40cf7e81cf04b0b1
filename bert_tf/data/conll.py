"""CoNLL-style token/tag files: one token per line, sentences separated by blank lines.

Columns are tab-separated when a line contains a tab (so tokens may contain spaces), otherwise
whitespace-separated (CoNLL-2003's `EU NNP B-NP B-ORG`); the token is `token_column` (default first)
and the tag `tag_column` (default last). A line holding only whitespace ends a sentence (the WNUT
tweets we ship separate sentences with a lone tab); `-DOCSTART-` lines are document markers and are
skipped.

Tags follow IOB2: `O`, `B-TYPE` opens an entity, `I-TYPE` continues one. An `I-TYPE` that does not
follow `B-TYPE`/`I-TYPE` of the same type is not IOB2. With `scheme="iob2"` (the default) such a tag
is an error naming the line; with `scheme="iob1"` the file is read as IOB1 (original CoNLL-2003,
where `B-` only separates two adjacent entities of one type) and converted to IOB2 by turning each
entity-opening `I-` into `B-`. Any other tag shape (BIOES `E-`/`S-`, a bare `PER`) is an error.
"""

from __future__ import annotations

import os

from bert_tf import fileio
from bert_tf.config import write_text_atomic

DOCSTART = "-DOCSTART-"


class ConllFormatError(ValueError):
    """A CoNLL file line or tag sequence is malformed."""


def _entity_type(tag: str) -> str | None:
    """'O' → None; 'B-X'/'I-X' → 'X'; anything else raises KeyError (caller words the error)."""
    if tag == "O":
        return None
    if len(tag) > 2 and tag[:2] in ("B-", "I-"):
        return tag[2:]
    raise KeyError(tag)


def check_iob2(tags, where=None) -> None:
    """Raises ConllFormatError unless `tags` is a valid IOB2 sequence. `where(i)` names position i."""
    where = where or (lambda i: f"tag {i}")
    previous = "O"
    for i, tag in enumerate(tags):
        try:
            kind = _entity_type(tag)
        except KeyError:
            raise ConllFormatError(f"{where(i)}: tag {tag!r} is not O, B-TYPE or I-TYPE (IOB2)") from None
        if tag.startswith("I-") and (previous == "O" or previous[2:] != kind):
            raise ConllFormatError(
                f"{where(i)}: {tag!r} follows {previous!r}; in IOB2 an entity starts with B-{kind} "
                "(read the file with scheme='iob1' if it is IOB1)")
        previous = tag


def iob1_to_iob2(tags) -> list:
    """Converts IOB1 to IOB2: an I-X that opens an entity (after O or another type) becomes B-X."""
    out, previous = [], "O"
    for tag in tags:
        _entity_type(tag)  # shape check
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def tag_vocabulary(sentences) -> tuple:
    """'O' first, then B-/I- for each entity type seen, types sorted: a stable id order."""
    types = sorted({tag[2:] for _, tags in sentences for tag in tags if tag != "O"})
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))


def parse_conll(text: str, source: str = "<conll>", token_column: int = 0, tag_column: int = -1,
                scheme: str = "iob2", label_names=None) -> list:
    """Parses CoNLL text into a list of (tokens, tags) sentences (lists of str).

    `label_names`, when given, is the closed tag set: any other tag is an error (for dev/test files
    read with the training vocabulary).
    """
    if scheme not in ("iob2", "iob1"):
        raise ValueError(f"scheme must be 'iob2' or 'iob1', got {scheme!r}")
    allowed = None if label_names is None else set(label_names)
    sentences = []
    tokens, tags, line_numbers = [], [], []
    width = None  # columns per line, fixed for a file: a token with a stray space shows up here

    def close():
        if not tokens:
            return
        if scheme == "iob1":
            fixed = iob1_to_iob2(tags)
        else:
            check_iob2(tags, lambda i: f"{source}: line {line_numbers[i]}")
            fixed = list(tags)
        sentences.append((list(tokens), fixed))
        tokens.clear(), tags.clear(), line_numbers.clear()

    # split("\n"), not splitlines(): the latter also breaks at U+0085, U+2028, form feeds... which
    # are legitimate characters inside a tweet token.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            close()
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if fields[0] == DOCSTART:
            close()
            continue
        if len(fields) < 2:
            raise ConllFormatError(f"{source}: line {number}: expected a token and a tag, got {line!r}")
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ConllFormatError(f"{source}: line {number}: {len(fields)} columns where earlier lines "
                                   f"have {width}: {line!r}")
        try:
            token, tag = fields[token_column], fields[tag_column]
        except IndexError:
            raise ConllFormatError(f"{source}: line {number}: no column {token_column} / {tag_column} "
                                   f"in {line!r}") from None
        if not token or not tag:
            raise ConllFormatError(f"{source}: line {number}: empty token or tag in {line!r}")
        try:
            _entity_type(tag)
        except KeyError:
            raise ConllFormatError(f"{source}: line {number}: tag {tag!r} is not O, B-TYPE or I-TYPE "
                                   "(IOB2)") from None
        if allowed is not None and tag not in allowed:
            raise ConllFormatError(f"{source}: line {number}: tag {tag!r} is not in the label set "
                                   f"({len(allowed)} tags: {sorted(allowed)[:8]}...)")
        tokens.append(token)
        tags.append(tag)
        line_numbers.append(number)
    close()
    return sentences


def read_conll(path: str, **kwargs) -> list:
    """`parse_conll` of a UTF-8 file; keyword arguments as there."""
    try:
        with fileio.open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConllFormatError(f"{path}: not UTF-8 ({e})") from None
    return parse_conll(text, source=os.fspath(path), **kwargs)


def format_conll(sentences) -> str:
    """`token<TAB>tag` lines, a blank line after each sentence; checks what it writes."""
    lines = []
    for n, (tokens, tags) in enumerate(sentences):
        if len(tokens) != len(tags) or not tokens:
            raise ConllFormatError(f"sentence {n}: {len(tokens)} tokens and {len(tags)} tags")
        for token, tag in zip(tokens, tags):
            if not token or any(ch in token for ch in "\t\n\r") or token != token.strip():
                raise ConllFormatError(f"sentence {n}: token {token!r} cannot be written to a CoNLL "
                                       "line (empty, or contains a tab/newline/edge whitespace)")
            lines.append(f"{token}\t{tag}")
        check_iob2(tags, lambda i: f"sentence {n}, token {i}")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def write_conll(path: str, sentences) -> None:
    """Writes sentences as a CoNLL file (atomically) that `read_conll` reads back unchanged."""
    write_text_atomic(os.fspath(path), format_conll(sentences))
