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


# ---------------------------------------------------------------------- tiny fine-tuning runs
TINY_WORDS = ("good", "great", "fine", "nice", "bad", "awful", "poor", "sad", "movie", "plot",
              "the", "a", "was", "very", "not", "and")


def write_tiny_init(folder, max_position_embeddings=32, seed=0) -> str:
    """A 2-layer, 32-wide encoder in Hugging Face layout with a 21-token vocab.txt beside it:
    `bert-tf finetune --init FOLDER` in about a second."""
    from bert_tf.config import BertConfig
    from bert_tf.models import BertEncoder
    folder = os.fspath(folder)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]
    config = BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=max_position_embeddings)
    keras.utils.set_random_seed(seed)
    BertEncoder(config).save_pretrained(folder)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in tokens))
    return folder


def write_tiny_classification(path, n=16, seed=0, labels=("neg", "pos")) -> str:
    """`n` rows of TINY_WORDS sentences with labels cycling through `labels` (CSV/JSONL by
    extension)."""
    from bert_tf.data.classification import write_classification
    rng = np.random.default_rng(seed)
    rows = [(" ".join(rng.choice(TINY_WORDS, 5)), labels[i % len(labels)]) for i in range(n)]
    write_classification(os.fspath(path), rows)
    return os.fspath(path)
