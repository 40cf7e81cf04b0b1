"""How a reliability case ended, in the classes of issue 17's summary line.

A passing case counts under the class it expected (OK, CLEAR, RAISES; see cases.py). A failing one
counts under what went wrong, read from the exception that failed it:

    UNSAFE        a hostile file ran code or changed something outside the output (`Unsafe`)
    SILENT-WRONG  an expected error did not happen (`SilentWrong`, pytest's "DID NOT RAISE"), or a
                  check on the result failed (a plain AssertionError)
    TRACEBACK     an error that is not the clear one: an unexpected exception escaped the case,
                  an error lacks the words that name the field (`Unclear`), or a check found
                  traceback text in what the user would see, or pytest.raises(match=...) failed
"""

from __future__ import annotations

EXPECTED = ("CLEAR", "OK", "RAISES")
FAILURES = ("TRACEBACK", "SILENT-WRONG", "UNSAFE")


class Unsafe(AssertionError):
    """A hostile input ran code or changed a file outside the output."""


class SilentWrong(AssertionError):
    """The expected error did not happen, or the answer is wrong."""


class Unclear(AssertionError):
    """An error came, but not the clear one (its message does not name what was wrong)."""


def classify(expected: str, outcome: str, error: BaseException | None = None) -> str:
    """The summary class of a case that expected `expected` and ended with pytest's `outcome`
    ("passed", "failed", "skipped"), failing with `error` (the exception, when it failed)."""
    if expected not in EXPECTED:
        raise ValueError(f"expected class {expected!r} is not one of {EXPECTED}")
    if outcome == "passed":
        return expected
    if outcome == "skipped":
        return "SKIPPED"
    if isinstance(error, Unsafe):
        return "UNSAFE"
    if isinstance(error, SilentWrong):
        return "SILENT-WRONG"
    if isinstance(error, Unclear):
        return "TRACEBACK"
    if type(error).__name__ == "Failed" and "DID NOT RAISE" in str(error):
        return "SILENT-WRONG"
    if isinstance(error, AssertionError):
        text = str(error)
        unclear = ("Traceback (most recent call last)" in text        # printed to the user
                   or text.startswith("Regex pattern did not match"))  # pytest.raises(match=...)
        return "TRACEBACK" if unclear else "SILENT-WRONG"
    return "TRACEBACK"


def expected_class(test_id: str, markers) -> str | None:
    """The class a case declares: its parametrized id's prefix (`CLEAR-...`) or an
    `@pytest.mark.expect("OK")` marker; None when it declares none."""
    for name in EXPECTED:
        if test_id.startswith(name + "-"):
            return name
    for mark in markers:
        if mark.name == "expect":
            return mark.args[0]
    return None


def summary_line(classes) -> str:
    """`reliability: N cases — CLEAR a, OK b, RAISES c; TRACEBACK 0, SILENT-WRONG 0, UNSAFE 0`."""
    classes = list(classes)
    count = {name: classes.count(name) for name in EXPECTED + FAILURES + ("SKIPPED",)}
    line = (f"reliability: {len(classes)} cases — "
            + ", ".join(f"{name} {count[name]}" for name in EXPECTED) + "; "
            + ", ".join(f"{name} {count[name]}" for name in FAILURES))
    return line + (f"; SKIPPED {count['SKIPPED']}" if count["SKIPPED"] else "")
