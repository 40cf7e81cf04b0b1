"""bert_tf's fast text-to-probabilities path: in-graph tokenizer, rows trimmed to the batch's
longest sentence (rounded up to a bucket), the model compiled with XLA.

Why trimming: the tokenizer packs every row to `sequence_length` (128), but a real review snippet
is ~30 pieces. Padding positions get an additive -10000 attention bias, so exp() makes their
weight exactly 0 in float32: cutting them off changes no real token's output (up to summation
order), while the encoder's cost falls with the length (linearly in the projections, quadratically
in attention). Rounding the length up to a multiple of `bucket` bounds the number of distinct
shapes XLA compiles (128 / 16 = 8) while wasting at most bucket - 1 positions.

This is what an exported serving signature should do too (see `trim_to_bucket`).
"""

from __future__ import annotations


def trim_to_bucket(features: dict, bucket: int = 16):
    """features (dense [b, s] tensors with `attention_mask`) -> the same, cut to the longest row
    rounded up to a multiple of `bucket` (never beyond s)."""
    import tensorflow as tf
    mask = features["attention_mask"]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))       # scalar
    length = tf.minimum((longest + bucket - 1) // bucket * bucket, tf.shape(mask)[1])
    length = tf.maximum(length, 1)
    return {name: value[:, :length] for name, value in features.items()}


class TrimmedClassifierPath:
    """Callable: list of strings -> probabilities [batch, classes] (numpy)."""

    def __init__(self, tokenizer, classifier, bucket: int = 16, jit_compile: bool = True):
        import tensorflow as tf

        if bucket < 1:
            raise ValueError(f"bucket must be >= 1, got {bucket}")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def features(text):
            return trim_to_bucket(tokenizer(text), bucket)

        # One XLA executable per (batch, bucket) shape, cached by tf.function/XLA after warm-up.
        @tf.function(jit_compile=jit_compile, reduce_retracing=True)
        def probabilities(features):
            logits = classifier(features, training=False)["logits"]     # [b, classes] float32
            return tf.nn.softmax(logits, axis=-1)

        self._features = features
        self._probabilities = probabilities
        self._tf = tf

    def __call__(self, texts) -> "np.ndarray":  # noqa: F821
        return self._probabilities(self._features(self._tf.constant(texts))).numpy()


def export_trimmed_saved_model(tokenizer, classifier, out_dir: str, bucket: int = 16) -> str:
    """Writes a SavedModel whose `serving_default` (text [batch] -> probabilities [batch, c]) is
    the trimmed path above: tokenizer, `trim_to_bucket`, then the model as an XLA function (the
    jit_compile attribute survives saving; the loaded model compiles one executable per shape).
    This is the signature we propose for `bert_tf.export`; the directory is written atomically."""
    import os
    import shutil
    import tempfile

    import tensorflow as tf

    class TrimmedServing(tf.Module):
        def __init__(self):
            super().__init__(name="bert_trimmed_serving")
            self.tokenizer = tokenizer
            self.model = classifier
            # Keras 3 variables: track the tf.Variables so the loader finds them.
            self.model_variables = [v.value for v in classifier.variables]

            @tf.function(jit_compile=True, reduce_retracing=True)
            def probabilities(features):
                logits = classifier(features, training=False)["logits"]   # [b, c]
                return tf.nn.softmax(logits, axis=-1)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
            def serve(text):
                features = trim_to_bucket(tokenizer(text), bucket)
                return {"probabilities": probabilities(
                    {k: tf.ensure_shape(v, [None, None]) for k, v in features.items()})}
            self.serve = serve

    module = TrimmedServing()
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-savedmodel-", dir=parent)
    try:
        tf.saved_model.save(module, staging,
                            signatures={"serving_default": module.serve.get_concrete_function()})
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
