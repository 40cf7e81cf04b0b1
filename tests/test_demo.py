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

from bert_tf.demo import DemoOptions, format_report, run_demo
from bert_tf.export import servability_report


@pytest.fixture(scope="module")
def demo(minilm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(DemoOptions.quick(out=str(out)), log=lambda *a: None)


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
