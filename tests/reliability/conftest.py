"""Overrides the suite-wide autouse fixture of tests/conftest.py for the reliability cases.

Reseeding (`keras.utils.set_random_seed`) clears TensorFlow's function caches, so every case would
re-instantiate the loaded signatures (~0.7 s a call, more than the case itself). The models here
are built once per module, in fixtures that seed themselves; the float32 policy is still set.
"""

import keras
import pytest


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    keras.mixed_precision.set_global_policy("float32")
    yield
