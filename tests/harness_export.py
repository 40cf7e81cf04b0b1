"""The export section of the shared model harness: any bert_tf task model, exported to a TF
Serving SavedModel, must answer `serve_ids` with exactly the Keras outputs and be servable."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def run_export_test(model, inputs, tmp_path, tokenizer=None, labels=None, atol=1e-5):
    """Exports `model` (with `tokenizer`, if given, inside `serving_default`), reloads it, checks
    serve_ids == Keras on `inputs` (int32 ids dict) and that every op is servable. Per-token
    outputs ([b, s, ...]) are compared where attention_mask is 1: the export cuts trailing padding
    off, and a masked-out position's output is not defined."""
    from bert_tf.export import export_saved_model, servability_report
    path = export_saved_model(model, tmp_path / "harness_export", tokenizer=tokenizer,
                              labels=labels)
    assert servability_report(path) == [], servability_report(path)
    loaded = tf.saved_model.load(path)
    expected = {k: np.asarray(v) for k, v in model(inputs, training=False).items()}
    got = loaded.signatures["serve_ids"](**{k: tf.constant(v, tf.int32) for k, v in inputs.items()})
    mask = np.asarray(inputs["attention_mask"]) > 0                             # [b, s]
    for name, value in expected.items():
        served = got[name].numpy()
        assert served.shape == value.shape, (name, served.shape, value.shape)
        if value.ndim >= 2 and value.shape[:2] == mask.shape:                   # per-token
            keep = mask.reshape(mask.shape + (1,) * (value.ndim - 2))
            served, value = np.where(keep, served, 0), np.where(keep, value, 0)
        np.testing.assert_allclose(served, value, atol=atol, rtol=0,
                                   err_msg=f"serve_ids {name} differs from Keras")
    return path, loaded
