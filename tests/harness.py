"""One harness that checks every bert_tf model the same way (after KerasHub's test_case.py):
build, call, output shapes, `.keras` round trip with identical outputs, and float32 outputs."""

from __future__ import annotations

import os

import keras
import numpy as np


def random_batch(config, batch=3, seq=12, seed=0, pad_rows=True):
    """int32 inputs; rows after the first are padded (mask 0, id 0) by 3 more positions each."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1, config.vocab_size, size=(batch, seq)).astype("int32")
    token_type_ids = rng.integers(0, config.type_vocab_size, size=(batch, seq)).astype("int32")
    attention_mask = np.ones((batch, seq), "int32")
    if pad_rows:
        for row in range(1, batch):
            length = max(2, seq - 3 * row)
            attention_mask[row, length:] = 0
            input_ids[row, length:] = 0
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}


def to_numpy(outputs):
    return {k: (np.asarray(v) if not isinstance(v, (list, tuple)) else [np.asarray(t) for t in v])
            for k, v in outputs.items()}


def run_model_test(model, inputs, expected_shapes: dict, tmp_path, atol=0.0):
    """Calls `model` on `inputs`, checks every output's shape and finiteness, saves it to `.keras`,
    reloads it and checks the reloaded model gives the same outputs (to `atol`, default exact)."""
    outputs = to_numpy(model(inputs, training=False))
    assert set(outputs) == set(expected_shapes), f"outputs {sorted(outputs)} != {sorted(expected_shapes)}"
    for name, shape in expected_shapes.items():
        assert outputs[name].shape == tuple(shape), f"{name}: {outputs[name].shape} != {shape}"
        assert np.all(np.isfinite(outputs[name].astype("float32"))), f"{name} has non-finite values"
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    again = to_numpy(reloaded(inputs, training=False))
    for name in expected_shapes:
        np.testing.assert_allclose(again[name], outputs[name], atol=atol, rtol=0,
                                   err_msg=f"{name} differs after the .keras round trip")
    return outputs, reloaded
