"""The summary line's classifier maps each way a case can end to the right class (outcomes.py).
The failures are built here, not by making real cases fail."""

import pytest

from tests.reliability.cases import Case, check
from tests.reliability.outcomes import (SilentWrong, Unclear, Unsafe, classify, expected_class,
                                        summary_line)


def failure_of(call) -> BaseException:
    """The exception `call` fails with, as pytest would see it."""
    try:
        call()
    except BaseException as e:  # noqa: B036 (pytest's Failed is a BaseException)
        return e
    raise AssertionError("no failure")


def did_not_raise():
    with pytest.raises(ValueError):
        pass


def regex_did_not_match():
    with pytest.raises(ValueError, match="names the field"):
        raise ValueError("something else")


def traceback_printed():
    err = "Traceback (most recent call last):\n  File ...\nKeyError: 'x'\n"
    assert "Traceback" not in err, err


def wrong_answer():
    assert [1, 2] == [2, 1]


# (name, expected class, pytest outcome, how it failed (a call) or None, summary class)
OUTCOMES = [
    ("passed CLEAR", "CLEAR", "passed", None, "CLEAR"),
    ("passed OK", "OK", "passed", None, "OK"),
    ("passed RAISES", "RAISES", "passed", None, "RAISES"),
    ("skipped", "OK", "skipped", None, "SKIPPED"),
    ("unsafe marker", "CLEAR", "failed", lambda: (_ for _ in ()).throw(Unsafe("marker")), "UNSAFE"),
    ("silent wrong", "CLEAR", "failed", lambda: (_ for _ in ()).throw(SilentWrong("x")),
     "SILENT-WRONG"),
    ("did not raise", "CLEAR", "failed", did_not_raise, "SILENT-WRONG"),
    ("wrong answer", "OK", "failed", wrong_answer, "SILENT-WRONG"),
    ("unclear words", "CLEAR", "failed", lambda: (_ for _ in ()).throw(Unclear("x")), "TRACEBACK"),
    ("regex did not match", "CLEAR", "failed", regex_did_not_match, "TRACEBACK"),
    ("traceback printed", "CLEAR", "failed", traceback_printed, "TRACEBACK"),
    ("unexpected exception", "OK", "failed", lambda: {}["x"], "TRACEBACK"),
    ("raw TF-like error in an OK case", "OK", "failed", lambda: int("x"), "TRACEBACK"),
    ("check: no error", "CLEAR", "failed",
     lambda: check(Case("c", "CLEAR", words=("w",)), lambda: 1), "SILENT-WRONG"),
    ("check: words missing", "CLEAR", "failed",
     lambda: check(Case("c", "CLEAR", words=("field",)), lambda: int("x")), "TRACEBACK"),
    ("check: other error type", "CLEAR", "failed",
     lambda: check(Case("c", "CLEAR", words=("w",), errors=(KeyError,)), lambda: int("x")),
     "TRACEBACK"),
]


@pytest.mark.parametrize("name, expected, outcome, fail, summary", OUTCOMES,
                         ids=["OK-" + c[0] for c in OUTCOMES])
def test_classify(name, expected, outcome, fail, summary):
    error = failure_of(fail) if fail else None
    assert classify(expected, outcome, error) == summary


@pytest.mark.expect("OK")
def test_declared_class_and_summary_line():
    assert expected_class("CLEAR-ids -7", []) == "CLEAR"
    assert expected_class("OKAY-x", []) is None                   # a prefix, not a substring
    assert expected_class("", [pytest.mark.expect("RAISES").mark]) == "RAISES"
    assert expected_class("", [pytest.mark.slow.mark]) is None
    with pytest.raises(ValueError, match="not one of"):
        classify("MAYBE", "passed")
    line = summary_line(["CLEAR", "CLEAR", "OK", "RAISES", "UNSAFE"])
    assert line == ("reliability: 5 cases — CLEAR 2, OK 1, RAISES 1; TRACEBACK 0, "
                    "SILENT-WRONG 0, UNSAFE 1")
    assert summary_line(["OK", "SKIPPED"]).endswith("; SKIPPED 1")
