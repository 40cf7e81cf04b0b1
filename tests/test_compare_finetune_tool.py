"""tools/compare_finetune.py's multi-seed bookkeeping (the fine-tuning itself is the tool's job:
it takes minutes per seed; tests/test_finetune.py covers the machinery on tiny models)."""

import importlib.util
import json
import os
import types

import pytest

TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "compare_finetune.py")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("compare_finetune", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(test, dev):
    return {"test": {"accuracy": test}, "dev": {"accuracy": dev}, "best_step": 10, "steps": 10,
            "seconds": 1.5}


def _args(**changes):
    args = dict(task="sentiment", max_length=64, epochs=1.0, batch_size=32, learning_rate=5e-5,
                warmup=0.1, seed=1, seeds="0,1", train_limit=4000, sides="bert_tf,torch",
                out="x", progress=False, xla=False)
    args.update(changes)
    return types.SimpleNamespace(**args)


def test_means_and_gap_over_seeds(tool, capsys):
    runs = {0: {"bert_tf": _result(0.80, 0.81), "torch": _result(0.82, 0.80)},
            1: {"bert_tf": _result(0.83, 0.80), "torch": _result(0.81, 0.79)}}
    tool.print_table(runs, "accuracy")
    out = capsys.readouterr().out
    assert "bert_tf  test accuracy: mean 81.50 ± 2.12 (sd) over 2 seed(s)" in out
    assert "torch    test accuracy: mean 81.50 ± 0.71 (sd) over 2 seed(s)" in out
    # gaps -2 and +2: mean 0, standard error sd(gaps)/sqrt(2) = 2.83/1.41 = 2.00
    assert "bert_tf - torch: +0.00 points of test accuracy (mean over 2 seed(s), standard error 2.00)" in out
    assert "bert_tf - torch: +1.00 points of dev accuracy" in out


def test_a_finished_seed_is_reused_and_another_recipe_is_refused(tool, tmp_path, capsys):
    saved = {"bert_tf": _result(0.8, 0.8), "torch": _result(0.8, 0.8)}
    recipe = vars(_args(seeds=None, out="elsewhere", seed=1))  # an older single-seed run
    (tmp_path / "results.json").write_text(json.dumps({"recipe": recipe, "results": saved}))
    assert tool.run_seed(_args(), "unused", str(tmp_path), None) == saved
    assert "reusing" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(learning_rate=1e-4), "unused", str(tmp_path), None)
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(seed=2), "unused", str(tmp_path), None)


def test_a_file_from_before_the_xla_flag_ran_without_it(tool, tmp_path, capsys):
    saved = {"bert_tf": _result(0.8, 0.8), "torch": _result(0.8, 0.8)}
    recipe = vars(_args())
    del recipe["xla"]
    (tmp_path / "results.json").write_text(json.dumps({"recipe": recipe, "results": saved}))
    assert tool.run_seed(_args(), "unused", str(tmp_path), None) == saved
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(xla=True), "unused", str(tmp_path), None)
