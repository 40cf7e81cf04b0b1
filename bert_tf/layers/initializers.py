"""BERT's one weight initializer, shared by every layer and head."""

import keras


def truncated_normal(initializer_range: float):
    """A fresh `TruncatedNormal(stddev=initializer_range)`: google-research/bert's
    `create_initializer`, which every kernel and embedding table of BERT starts from."""
    return keras.initializers.TruncatedNormal(stddev=initializer_range)
