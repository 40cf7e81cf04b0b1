"""The main job (`bert-tf demo`): MiniLM-L6 fine-tuned on Rotten Tomatoes, exported to a TF Serving
SavedModel and a TFLite model. The bounded `quick` run is checked against Keras, in a fresh process
where bert_tf is not importable, and through the op allow-list."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bert_tf.demo import DemoOptions, _Progress, format_report, run_demo, training_summary
from bert_tf.export import servability_report


@pytest.fixture(scope="module")
def demo(minilm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(DemoOptions.quick(out=str(out)), log=lambda *a: None)


@pytest.mark.slow
def test_quick_demo_runs_the_whole_pipeline(demo):
    assert demo["training"]["steps"] >= 1
    assert 0.0 <= demo["accuracy"] <= 1.0 and demo["eval_examples"] == 128
    assert demo["saved_model_dir"].endswith(os.path.join("saved_models", "sentiment", "1"))
    assert servability_report(demo["saved_model_dir"]) == []
    np.testing.assert_allclose(demo["saved_model_probabilities"], demo["keras_probabilities"], atol=1e-5)
    # dynamic-range TFLite: weights int8, so close, not equal; labels must agree on these sentences
    assert np.abs(demo["tflite_probabilities"] - demo["keras_probabilities"]).max() < 0.05
    assert (demo["tflite_probabilities"].argmax(-1) == demo["keras_probabilities"].argmax(-1)).all()
    report = format_report(demo)
    assert "Test accuracy" in report and "TFLite" in report and "MiB" in report


@pytest.mark.slow
def test_fine_tuned_minilm_saved_model_in_a_fresh_process_without_bert_tf(demo, tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["bert_tf"] = None
        import tensorflow as tf
        import tensorflow_text
        loaded = tf.saved_model.load({demo['saved_model_dir']!r})
        out = loaded.signatures["serving_default"](text=tf.constant({demo['sentences']!r}))
        print(json.dumps(out["probabilities"].numpy().tolist()))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    probabilities = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(probabilities, demo["keras_probabilities"], atol=1e-5)


def test_demo_cli_bad_model_dir_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bert_tf.cli", "demo", "--quick", "--model",
                           str(tmp_path), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "has no vocab.txt" in proc.stderr and "Traceback" not in proc.stderr


def test_training_summary_names_the_time_budget_only_when_steps_were_left_out():
    run = {"train_examples": 64, "planned_steps": 4, "train_seconds": 12.0}
    complete = training_summary({**run, "steps": 4, "stopped_at_time_budget": True})
    assert complete.endswith("4/4 steps in 12 s") and "time budget" not in complete
    cut = training_summary({**run, "steps": 3, "stopped_at_time_budget": True})
    assert cut.endswith("3/4 steps in 12 s (stopped at the time budget)")
    assert "time budget" not in training_summary({**run, "steps": 4, "stopped_at_time_budget": False})


@pytest.mark.parametrize("planned, expected_steps, expected_stop", [(1, 1, False), (3, 1, True)])
def test_time_budget_flags_only_a_run_it_cut_short(planned, expected_steps, expected_stop):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    # max_seconds=0: the budget is spent at the first check (the clock starts after step 1).
    progress = _Progress(planned, max_seconds=0.0, enabled=False)
    model.fit(np.zeros((planned, 2)), np.zeros((planned, 1)), batch_size=1, epochs=1, verbose=0,
              callbacks=[progress.callback])
    assert (progress.steps_done, progress.stopped_early) == (expected_steps, expected_stop)
