"""`HashDropout`: the keep mask's statistics, determinism, and the same mask with and without XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf.layers import HashDropout
from bert_tf.layers.dropout import fmix32

RATE = 0.1
SHAPE = [8, 4, 64, 64]            # 131,072 elements, an attention-probabilities shape
N = int(np.prod(SHAPE))


def _dropped(layer, x=None):
    x = tf.ones(SHAPE) if x is None else x
    return layer(x, training=True).numpy() == 0


def _sigma(p, n):
    return np.sqrt(p * (1 - p) / n)


def test_fmix32_matches_murmur3_reference():
    def reference(h):   # MurmurHash3 fmix32, in Python integers
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)
    values = [0, 1, 2, 12345, 0xDEADBEEF, 0xFFFFFFFF]
    got = fmix32(tf.constant(values, tf.uint32)).numpy()
    assert [int(v) for v in got] == [reference(v) for v in values]


def test_keep_rate_scale_and_identity_outside_training():
    layer = HashDropout(RATE, seed=1)
    x = tf.random.stateless_normal(SHAPE, seed=[0, 0]) + 3.0
    y = layer(x, training=True).numpy()
    dropped = y == 0
    assert abs(dropped.mean() - RATE) < 5 * _sigma(RATE, N)
    np.testing.assert_allclose(y[~dropped], x.numpy()[~dropped] / (1 - RATE), rtol=1e-6)
    assert abs(y.mean() / x.numpy().mean() - 1) < 0.01         # inverted dropout: unbiased
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(HashDropout(0.0)(x, training=True), x)


def test_masks_are_independent_across_calls_neighbours_and_positions():
    layer = HashDropout(RATE, seed=2)
    a, b = _dropped(layer), _dropped(layer)
    assert (a != b).any()
    # Independent masks: both dropped with probability rate².
    assert abs((a & b).mean() - RATE ** 2) < 5 * _sigma(RATE ** 2, N)
    flat = a.reshape(-1)
    assert abs((flat[1:] & flat[:-1]).mean() - RATE ** 2) < 5 * _sigma(RATE ** 2, N)
    row = a.reshape(-1, SHAPE[-1])                                    # [rows, 64]
    assert abs((row[1:] & row[:-1]).mean() - RATE ** 2) < 5 * _sigma(RATE ** 2, N)
    # Every last-axis position is dropped at the same rate (chi-square, 63 dof; p < 1e-4 at 110).
    counts = row.sum(axis=0)
    expected = RATE * row.shape[0]
    chi2 = float((((counts - expected) ** 2) / (expected * (1 - RATE))).sum())
    assert chi2 < 110, chi2


def test_same_seed_same_masks_in_eager_graph_and_xla():
    eager = [_dropped(HashDropout(RATE, seed=7)) for _ in range(2)]
    np.testing.assert_array_equal(eager[0], eager[1])
    assert (_dropped(HashDropout(RATE, seed=8)) != eager[0]).any()
    x = tf.ones(SHAPE)
    masks = []
    for jit in (False, True):
        layer = HashDropout(RATE, seed=7)
        fn = tf.function(lambda t, layer=layer: layer(t, training=True), jit_compile=jit)
        masks.append([fn(x).numpy() == 0 for _ in range(2)])
    for step in range(2):
        np.testing.assert_array_equal(masks[0][step], masks[1][step])
    np.testing.assert_array_equal(masks[0][0], eager[0])


def test_gradient_is_the_scaled_mask_and_bf16_stays_bf16():
    layer = HashDropout(RATE, seed=3)
    x = tf.ones([4, 32])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_allclose(grad, (y.numpy() != 0) / (1 - RATE), rtol=1e-6)
    bf16 = HashDropout(RATE, seed=3, dtype="mixed_bfloat16")
    assert bf16(tf.ones([4, 32], tf.bfloat16), training=True).dtype == tf.bfloat16


def test_bad_rate_and_serialization():
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="dropout rate must be in"):
            HashDropout(bad)
    layer = HashDropout(0.25, seed=4)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, HashDropout) and clone.rate == 0.25 and clone.seed == 4
    assert len(layer.variables) == 1 and not HashDropout(0.0).variables   # as keras Dropout


def test_reseed_dropout_changes_only_the_masks():
    """`reseed_dropout`: the same dropout seed gives the same training-mode outputs from any
    prior RNG history, another gives other outputs; weights and inference are untouched."""
    from bert_tf.config import BertConfig
    from bert_tf.layers import reseed_dropout
    from bert_tf.models import BertClassifier, BertEncoder

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    keras.utils.set_random_seed(0)
    model = BertClassifier(BertEncoder(config), num_classes=3)
    inputs = {"input_ids": tf.constant([[2, 5, 9, 3, 0, 0], [2, 7, 3, 0, 0, 0]]),
              "attention_mask": tf.constant([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]),
              "token_type_ids": tf.zeros([2, 6], tf.int32)}
    weights = [w.numpy() for w in model.weights if "seed_generator" not in w.path]
    inference = model(inputs, training=False)["logits"].numpy()

    def trained_outputs(seed):
        # embeddings + 3 per layer (attention probabilities, attention output, feed-forward output)
        # + the classifier's dropout: every one of them is reseeded
        assert reseed_dropout(model, seed) == 1 + 3 * config.num_hidden_layers + 1
        return [model(inputs, training=True)["logits"].numpy() for _ in range(2)]

    first = trained_outputs(7)
    model(inputs, training=True)          # advance every generator: reseeding must not care
    np.testing.assert_array_equal(np.stack(trained_outputs(7)), np.stack(first))
    assert not np.allclose(first[0], first[1])          # successive calls draw new masks
    other = trained_outputs(8)
    assert not np.allclose(other[0], first[0])
    for before, w in zip(weights, [w for w in model.weights if "seed_generator" not in w.path]):
        np.testing.assert_array_equal(before, w.numpy(), err_msg=w.path)
    np.testing.assert_array_equal(model(inputs, training=False)["logits"].numpy(), inference)
