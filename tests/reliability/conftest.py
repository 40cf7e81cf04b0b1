"""Reliability suite plumbing: seeds, each case's declared class, and the summary line.

Reseeding (`keras.utils.set_random_seed`) clears TensorFlow's function caches, so every case would
re-instantiate the loaded signatures (~0.7 s a call, more than the case itself). The models here
are built once per module, in fixtures that seed themselves; the float32 policy is still set.

Every case declares its class (outcomes.expected_class): collection fails on one that does not.
At the end pytest prints one line counting the cases per class (outcomes.summary_line).
"""

import os

import keras
import pytest

from tests.reliability.outcomes import classify, expected_class, summary_line

HERE = os.path.dirname(os.path.abspath(__file__))
_CLASS = pytest.StashKey[str]()


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    keras.mixed_precision.set_global_policy("float32")
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "expect(cls): the class (OK, CLEAR, RAISES) a reliability "
                                       "case expects, for cases that are not parametrized")


def _ours(item) -> bool:
    return os.path.dirname(os.path.abspath(str(item.path))) == HERE


def pytest_collection_modifyitems(config, items):
    undeclared = []
    for item in items:
        if not _ours(item):
            continue
        callspec = getattr(item, "callspec", None)
        declared = expected_class(callspec.id if callspec else "", item.iter_markers())
        if declared is None:
            undeclared.append(item.nodeid)
        else:
            item.stash[_CLASS] = declared
    if undeclared:
        raise pytest.UsageError("reliability cases without an expected class (id prefix CLEAR-/"
                                "OK-/RAISES- or @pytest.mark.expect): " + ", ".join(undeclared))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    declared = item.stash.get(_CLASS, None)
    if declared is None or (report.when != "call" and report.passed):
        return
    error = call.excinfo.value if call.excinfo is not None else None
    report.user_properties.append(("reliability", classify(declared, report.outcome, error)))


def pytest_terminal_summary(terminalreporter):
    by_case = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()):
                # A failing setup/teardown outranks a passing call of the same case.
                if key == "reliability" and by_case.get(report.nodeid) in (None, "CLEAR", "OK",
                                                                          "RAISES"):
                    by_case[report.nodeid] = value
    if by_case:
        terminalreporter.write_line(summary_line(by_case.values()))
