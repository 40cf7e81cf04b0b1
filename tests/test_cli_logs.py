"""`bert-tf` keeps TensorFlow's C++ start-up logs off stderr unless `--verbose`."""

import os
import re
import subprocess
import sys

import pytest

from tests.repo_process import ROOT, run_python

# A TensorFlow C++ log line: "2026-01-01 12:00:00.123456: E external/.../cuda_platform.cc:51] ..."
# (or absl's "E0101 12:00:00.123456 ..." form).
TF_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: |[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ )",
                         re.MULTILINE)


def run_cli(*argv):
    """`python -m bert_tf.cli ARGV` as a user runs it: no TF_CPP_MIN_LOG_LEVEL of its own (the test
    process sets one in conftest)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "bert_tf.cli", *argv], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.slow
def test_tensorflow_start_up_logs_are_hidden_unless_verbose(tmp_path):
    # `convert` of a missing checkpoint imports TensorFlow (through the models), then fails fast.
    argv = ("convert", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out"))
    verbose = run_cli("--verbose", *argv)
    assert verbose.returncode == 2, verbose.stderr
    if not TF_LOG_LINE.search(verbose.stderr):
        pytest.skip("this machine's TensorFlow logs nothing at start-up, so there is nothing to hide")
    quiet = run_cli(*argv)
    assert quiet.returncode == 2, quiet.stderr
    assert not TF_LOG_LINE.search(quiet.stderr), quiet.stderr
    assert quiet.stderr.strip() == f"bert-tf convert: error: No checkpoint at {tmp_path / 'missing'}"


def test_the_cli_does_not_import_tensorflow_to_parse_arguments():
    # The log level only works if it is set before TensorFlow is imported: parsing (every
    # subcommand's `register`) must leave TensorFlow unimported until a command runs.
    script = ("import sys\n"
              "from bert_tf.cli import build_parser\n"
              "build_parser().parse_args(['--verbose', 'convert', '--input', 'a', '--output', 'b'])\n"
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    proc = run_python(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
