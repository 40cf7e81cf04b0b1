"""WordPiece vocabulary files: one token per line, the line number is the id (BERT's vocab.txt)."""

from __future__ import annotations

import dataclasses

from bert_tf import fileio
from bert_tf.atomic import write_text_atomic


class VocabularyError(ValueError):
    """A vocabulary file or list is unusable (missing, empty, duplicate or missing special token)."""


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The special tokens BERT needs; each must be in the vocabulary."""
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    pad: str = "[PAD]"
    unk: str = "[UNK]"
    mask: str = "[MASK]"

    def as_list(self) -> list:
        return [self.pad, self.unk, self.cls, self.sep, self.mask]


def read_vocabulary(path: str) -> list:
    """Reads a vocab.txt (UTF-8, one token per line; trailing newline stripped, as BERT does)."""
    if not fileio.isfile(path):
        raise VocabularyError(f"{path}: vocabulary file not found")
    try:
        with fileio.open(path, encoding="utf-8", newline="\n") as f:
            tokens = [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as e:
        raise VocabularyError(f"{path}: not UTF-8 text ({e})") from None
    if tokens and tokens[-1] == "":
        tokens.pop()  # a trailing empty line is not a token
    check_vocabulary(tokens, source=path)
    return tokens


def check_vocabulary(tokens, source: str = "vocabulary", special_tokens: SpecialTokens | None = None):
    """Raises VocabularyError naming the first problem (line numbers are 1-based)."""
    if not tokens:
        raise VocabularyError(f"{source}: the vocabulary is empty")
    seen = {}
    for line, token in enumerate(tokens, start=1):
        if not isinstance(token, str):
            raise VocabularyError(f"{source}: line {line}: token {token!r} is not a string")
        if token.strip() == "":
            raise VocabularyError(f"{source}: line {line}: empty or whitespace-only token")
        if token in seen:
            raise VocabularyError(f"{source}: line {line}: token {token!r} duplicates line {seen[token]}")
        seen[token] = line
    if special_tokens is not None:
        for token in special_tokens.as_list():
            if token not in seen:
                raise VocabularyError(f"{source}: special token {token!r} is not in the vocabulary")


def write_vocabulary(tokens, path: str) -> None:
    """Writes tokens one per line, atomically (temp file in the same folder, then rename)."""
    check_vocabulary(tokens, source=path)
    write_text_atomic(path, "".join(token + "\n" for token in tokens))
