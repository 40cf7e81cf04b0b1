"""The export section of the shared model harness: any bert_tf task model, exported to a TF
Serving SavedModel, must answer `serve_ids` with exactly the Keras outputs and be servable."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def run_export_test(model, inputs, tmp_path, tokenizer=None, atol=1e-5):
    """Exports `model` (with `tokenizer`, if given, inside `serving_default`), reloads it, checks
    serve_ids == Keras on `inputs` (int32 ids dict) and that every op is servable."""
    from bert_tf.export import export_saved_model, servability_report
    path = export_saved_model(model, tmp_path / "harness_export", tokenizer=tokenizer)
    assert servability_report(path) == [], servability_report(path)
    loaded = tf.saved_model.load(path)
    expected = {k: np.asarray(v) for k, v in model(inputs, training=False).items()}
    got = loaded.signatures["serve_ids"](**{k: tf.constant(v, tf.int32) for k, v in inputs.items()})
    for name, value in expected.items():
        np.testing.assert_allclose(got[name].numpy(), value, atol=atol, rtol=0,
                                   err_msg=f"serve_ids {name} differs from Keras")
    return path, loaded
