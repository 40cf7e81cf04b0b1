"""LayerNorm that always does its statistics in float32, whatever the dtype policy.

Under `mixed_float16`/`mixed_bfloat16` the mean/variance of a 768-wide vector lose too much in half
precision, so we cast up, normalize, and cast back to the layer's compute dtype.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert_tf")
class Float32LayerNorm(keras.layers.Layer):
    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        # Variables are float32 under every policy (Keras mixed policies keep variable_dtype float32).
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")

    def call(self, x):
        # x: [..., hidden]
        x32 = ops.cast(x, "float32")
        mean = ops.mean(x32, axis=-1, keepdims=True)
        variance = ops.mean(ops.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * ops.rsqrt(variance + self.epsilon)
        y = y * ops.cast(self.gamma.value, "float32") + ops.cast(self.beta.value, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
