"""BERT's optimizers and schedule: checked against Model Garden (LAMB, WarmUp+PolynomialDecay) and a
numpy transcription of google-research/bert's AdamWeightDecayOptimizer update."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf.training.optimization import (AdamWeightDecay, Lamb, OptimizationError,
                                           WarmupPolynomialDecay, create_optimizer)

PATHS = ("encoder/dense/kernel", "encoder/attention_layer_norm/gamma", "encoder/dense/bias",
         "masked_lm/output_bias")


def _variables(rng):
    values = [rng.normal(size=(4, 3)), 1 + 0.1 * rng.normal(size=(3,)), rng.normal(size=(3,)),
              rng.normal(size=(5,))]
    variables = []
    for path, value in zip(PATHS, values):
        *scopes, name = path.split("/")
        with contextlib.ExitStack() as stack:
            for scope in scopes:
                stack.enter_context(keras.name_scope(scope))
            variables.append(keras.Variable(value.astype("float32"), name=name))
    return variables


def _gradients(rng, steps):
    return [[rng.normal(size=s).astype("float32") for s in ((4, 3), (3,), (3,), (5,))]
            for _ in range(steps)]


def test_variable_paths_select_weight_decay():
    variables = _variables(np.random.default_rng(0))
    assert [v.path for v in variables] == list(PATHS)
    opt = AdamWeightDecay()
    assert [opt.decays(v) for v in variables] == [True, False, False, False]


@pytest.mark.parametrize("warmup,power,end_lr", [(3, 1.0, 0.0), (0, 1.0, 0.0), (4, 2.0, 1e-5)])
def test_schedule_matches_model_garden(warmup, power, end_lr):
    from official.nlp import optimization as garden
    import tf_keras
    total, peak = 10, 1e-3
    reference = tf_keras.optimizers.schedules.PolynomialDecay(peak, total, end_lr, power=power)
    if warmup:
        reference = garden.WarmUp(peak, reference, warmup)
    ours = WarmupPolynomialDecay(peak, total, warmup, end_lr, power)
    for step in range(total + 3):
        np.testing.assert_allclose(float(ours(step)), float(reference(step)), rtol=1e-6, atol=1e-12)
    assert float(ours(0)) == pytest.approx(0.0 if warmup else peak)  # google's first step uses lr 0 in warmup


def test_adamw_is_google_adam_weight_decay():
    """No bias correction, eps 1e-6, decay 0.01 added to the update except LayerNorm and biases."""
    rng = np.random.default_rng(1)
    variables = _variables(rng)
    grads = _gradients(rng, 4)
    lr, wd, b1, b2, eps = 1e-2, 0.01, 0.9, 0.999, 1e-6
    params = [v.numpy().astype("float64") for v in variables]
    m = [np.zeros_like(p) for p in params]
    v2 = [np.zeros_like(p) for p in params]
    opt = AdamWeightDecay(learning_rate=lr, weight_decay_rate=wd)
    opt.build(variables)
    for step_grads in grads:
        opt.apply([tf.constant(g) for g in step_grads], variables)
        for i, (g, path) in enumerate(zip(step_grads, PATHS)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v2[i] = b2 * v2[i] + (1 - b2) * g * g
            update = m[i] / (np.sqrt(v2[i]) + eps)
            if "layer_norm" not in path and "bias" not in path:
                update += wd * params[i]
            params[i] = params[i] - lr * update
    for var, expected in zip(variables, params):
        np.testing.assert_allclose(var.numpy(), expected, rtol=2e-5, atol=2e-6)


def test_lamb_matches_model_garden():
    from official.modeling.optimization.lamb import LAMB
    rng = np.random.default_rng(2)
    variables = _variables(rng)
    grads = _gradients(rng, 4)
    reference_vars = [tf.Variable(v.numpy(), name=p.replace("/", "_")) for v, p in
                      zip(variables, PATHS)]
    # Model Garden matches regexes against names; ours against Keras paths.
    reference = LAMB(learning_rate=1e-2, weight_decay_rate=0.01, epsilon=1e-6,
                     exclude_from_weight_decay=["layer_norm", "bias"])
    ours = Lamb(learning_rate=1e-2, weight_decay_rate=0.01)
    ours.build(variables)
    for step_grads in grads:
        reference.apply_gradients(zip([tf.constant(g) for g in step_grads], reference_vars))
        ours.apply([tf.constant(g) for g in step_grads], variables)
    for var, ref in zip(variables, reference_vars):
        np.testing.assert_allclose(var.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_create_optimizer_and_bad_settings():
    opt = create_optimizer("lamb", 1e-3, total_steps=100, warmup_steps=10)
    assert isinstance(opt, Lamb)
    assert float(opt.learning_rate) == 0.0  # step 0 of the warmup
    with pytest.raises(OptimizationError, match="unknown optimizer 'sgd'"):
        create_optimizer("sgd")
    with pytest.raises(OptimizationError, match="warmup steps"):
        WarmupPolynomialDecay(1e-3, total_steps=10, warmup_steps=11)
    with pytest.raises(OptimizationError, match="learning rate must be positive"):
        WarmupPolynomialDecay(0.0, total_steps=10)
    with pytest.raises(OptimizationError, match="weight decay"):
        AdamWeightDecay(weight_decay_rate=-1)


def test_optimizer_config_round_trip():
    opt = create_optimizer("adamw", 2e-4, total_steps=50, warmup_steps=5)
    clone = AdamWeightDecay.from_config(opt.get_config())
    assert clone.weight_decay_rate == 0.01 and clone.epsilon == 1e-6
    assert float(clone.learning_rate) == pytest.approx(float(opt.learning_rate))
