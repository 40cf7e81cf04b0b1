"""Sentence embeddings from an encoder: masked mean pooling (+ L2 normalization), the way
sentence-transformers models such as all-MiniLM-L6-v2 were trained to be used."""

from keras import ops


def mean_pool(sequence_output, attention_mask, normalize: bool = True):
    """[b, s, h] token vectors, [b, s] mask → [b, h] mean over real tokens (unit length if asked)."""
    mask = ops.cast(attention_mask, sequence_output.dtype)[:, :, None]          # [b, s, 1]
    summed = ops.sum(sequence_output * mask, axis=1)                             # [b, h]
    counts = ops.maximum(ops.sum(mask, axis=1), 1e-9)                            # [b, 1]
    pooled = summed / counts
    if normalize:
        pooled = pooled / ops.maximum(ops.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled
