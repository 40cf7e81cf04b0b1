"""Table-driven bad-input cases: each case names what it feeds and the class of answer expected.

    OK        the call succeeds (the test then checks what it returned)
    CLEAR     one error whose message contains every word in `words` (the field, the range)
    RAISES    an error that cannot name the field (documented in the code under test; e.g. the
              TFLite interpreter's own "gather index out of bounds")

Case ids start with the class (`CLEAR-...`); the suite's summary line counts them per class (see
outcomes.py: a failing case counts as TRACEBACK, SILENT-WRONG or UNSAFE instead).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.reliability.outcomes import SilentWrong, Unclear

CLASSES = ("OK", "CLEAR", "RAISES")


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    expect: str                 # one of CLASSES
    inputs: object = None       # whatever the table's test feeds
    words: tuple = ()           # CLEAR: all of them appear in the message
    errors: tuple = (Exception,)

    def __post_init__(self):
        assert self.expect in CLASSES, self.expect
        assert (self.expect == "CLEAR") == bool(self.words), f"{self.name}: CLEAR needs words"

    @property
    def id(self) -> str:
        return f"{self.expect}-{self.name}"


def params(cases) -> list:
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), "case names must be unique"
    return [pytest.param(c, id=c.id) for c in cases]


def check(case: Case, call):
    """Runs `call()` and checks the answer's class; returns the result for OK cases."""
    if case.expect == "OK":
        return call()
    try:
        call()
    except case.errors as e:
        error = e
    else:
        raise SilentWrong(f"{case.id}: no error (expected {case.errors})")
    if case.expect == "CLEAR":
        message = str(error)
        missing = [w for w in case.words if w not in message]
        if missing:
            raise Unclear(f"{case.id}: {missing} not in the error: {message[:600]}")
    return error


def require_words(message: str, words) -> None:
    """An error message must name what was wrong: every word of `words` appears in it."""
    missing = [w for w in words if w not in message]
    if missing:
        raise Unclear(f"{missing} not in the error: {message[:600]}")
