"""The README's first lines must give exactly the two commands users and CI run."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        head = f.read().split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)?\n(.+?)\n```", head, flags=re.S)


def test_readme_opens_with_main_job_and_test_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "bert-tf demo" in main_job
    assert "pytest" in tests
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert tests in ci.splitlines(), ".ci/run must run the README's test command verbatim"


def test_cli_lists_every_subcommand():
    from bert_tf.cli import build_parser
    help_text = build_parser().format_help()
    # One subcommand per stage of the lifecycle.
    for command in ("vocab", "create-pretraining-data", "pretrain", "finetune", "evaluate", "predict",
                    "explain", "embed", "search", "export", "import", "convert", "bench", "demo"):
        assert f"\n    {command} " in help_text or f"\n    {command}\n" in help_text, command
