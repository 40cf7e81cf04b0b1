"""Model FLOPs of a BERT encoder, and the float32 matmul ceiling of this machine.

Model FLOP utilisation (MFU) = achieved model FLOP/s / the best FLOP/s a plain matmul reaches here,
so it says how close the encoder gets to what the hardware, through the same library, can do.
"""

from __future__ import annotations


def encoder_flops_per_sequence(hidden: int, layers: int, intermediate: int, seq: int) -> float:
    """Forward multiply-adds x 2 of the transformer blocks (embedding lookups and LayerNorms are
    negligible). Per layer, for one sequence of `seq` tokens:
        Q, K, V, output projections  4 · [seq, h] x [h, h]        = 8 s h²
        feed-forward in and out      2 · [seq, h] x [h, i]        = 4 s h i
        scores and context           2 · [n, s, d] x [n, d, s]    = 4 s² h
    """
    per_layer = 8 * seq * hidden ** 2 + 4 * seq * hidden * intermediate + 4 * seq ** 2 * hidden
    return float(layers * per_layer)


def batch_forward_flops(lengths, hidden: int, layers: int, intermediate: int,
                        width: int | None = None, packed: bool = False) -> float:
    """Forward FLOPs of one batch of rows with `lengths` real tokens each, as a serving path runs
    it (what P1 divides by its time to say how much of the machine each path uses).

    padded (packed=False): every layer on [b, width] positions, width = the longest row unless
        given (128 for a path that pads to a fixed length).
    packed: bert_tf's export: the position-wise layers (projections, feed-forward) on the n real
        tokens only, attention on the [b, longest] rows, and a [CLS]-only last layer (its keys and
        values still cover every token; its query, output projection and feed-forward the b
        [CLS] rows):
            layers 1..L-1   8 n h² + 4 n h i + 4 b w² h
            last layer      4 n h² (K, V) + 4 b h² (Q, output) + 4 b h i + 4 b w h (one query)
    """
    lengths = [int(n) for n in lengths]
    b, n = len(lengths), sum(lengths)
    if not packed:
        w = width if width is not None else max(lengths)
        return b * encoder_flops_per_sequence(hidden, layers, intermediate, w)
    w = max(lengths)
    position_wise = 8 * n * hidden ** 2 + 4 * n * hidden * intermediate
    full_layers = (layers - 1) * (position_wise + 4 * b * w * w * hidden)
    last = (4 * n * hidden ** 2 + 4 * b * hidden ** 2 + 4 * b * hidden * intermediate
            + 4 * b * w * hidden)
    return float(full_layers + last)


def training_flops_per_sequence(hidden, layers, intermediate, seq) -> float:
    """Forward + backward ≈ 3 × forward (the backward pass costs two matmuls per forward one)."""
    return 3.0 * encoder_flops_per_sequence(hidden, layers, intermediate, seq)


def matmul_case(m: int, k: int, n: int):
    """A zero-argument callable running one float32 [m, k] x [k, n] matmul under XLA (as the
    encoders run), warmed up, and the FLOPs it does. Timed in the same alternating rounds as the
    encoders (`timing.alternate`), so load from other processes hits the ceiling and the encoders
    alike and their ratio (MFU) stays meaningful.

    Which shape: no single product shape reaches the machine's matmul rate; on CPU a square product
    can run well below BERT-base's own feed-forward products, and whole XLA encoders then beat the
    "ceiling" (figures in docs/results.md). So the ceiling is the best of a few shapes, BERT-base's
    projections included (`Sizes.matmul_shapes`).
    """
    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).standard_normal((m, k), dtype=np.float32))
    b = tf.constant(np.random.default_rng(1).standard_normal((k, n), dtype=np.float32))
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)[:1, :1]),
                         jit_compile=True)
    matmul(a, b).numpy()  # compile and warm up
    return (lambda: matmul(a, b).numpy()), 2.0 * m * k * n
