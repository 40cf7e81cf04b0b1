"""Neighbour-attention initialization for pre-training from scratch.

Why: a small post-LN BERT trained with MLM first predicts the corpus's commonest token (the
unigram plateau), then a bag of the sequence's tokens with near-uniform attention, and only much
later learns attention that looks at particular positions, such as the adjacent tokens that carry
most of a masked token's information. On a few million characters and a CPU budget the run ends
inside the bag-of-words phase. This initialization starts layer 0 with the pattern it would have
to discover: half its heads attend to the previous token, half to the next one. All weights stay
ordinary BERT weights (same shapes, same forward pass, exported like any other), and training is
free to change them.

How: the position table becomes sinusoids, p[i, 2k] = a·sin(w_k i), p[i, 2k+1] = a·cos(w_k i),
with frequencies w_k spread over [0.25, 3.0] radians per position, so that p_i · p_j is largest
at i = j and small for |i - j| >= 1 (the kernel mean_k cos(w_k (i - j)) falls from 1 to below
0.15 in magnitude). In each (sin, cos) pair, the 2x2 rotation by s·w_k maps p_i to p_{i+s}. Head h
of layer 0 owns the pairs k with k mod heads = h (head_size / 2 of them): its key kernel selects
those coordinates and its query kernel rotates them by s = -1 (even heads) or +1 (odd heads), so
its attention score q_i · k_j = scale² · p_{i+s} · p_j on those coordinates, peaked at j = i + s.
Token embeddings stay random (std 0.02, |w| ~ 0.23 at hidden 128), the position amplitude makes
|p| about twice that, so the position part dominates the first scores.
"""

from __future__ import annotations

import numpy as np

ATTENTION_INITS = ("neighbours", "random")
FREQUENCY_RANGE = (0.25, 3.0)     # radians per position: every pair turns within a few positions


def _amplitude(word_std: float) -> float:
    """Per-coordinate sinusoid amplitude giving |p| = 2 |w| for word embeddings of std `word_std`:
    |p|² = (hidden / 2) a², |w|² = hidden · std²."""
    return 2.0 * word_std * np.sqrt(2.0)


def sinusoid_table(positions: int, hidden_size: int, amplitude: float) -> np.ndarray:
    """[positions, hidden] interleaved sin/cos of `hidden_size / 2` frequencies."""
    frequencies = np.linspace(*FREQUENCY_RANGE, hidden_size // 2)              # [hidden/2]
    angles = np.arange(positions)[:, None] * frequencies[None, :]       # [positions, hidden/2]
    table = np.zeros((positions, hidden_size))
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
    return amplitude * table


def neighbour_kernels(hidden_size: int, heads: int, scale: float = 1.0) -> tuple:
    """(query, key) kernels [hidden, heads, head_size] of the neighbour pattern: head h reads the
    sinusoid pairs k ≡ h (mod heads); even heads look one position back, odd heads one ahead."""
    head_size = hidden_size // heads
    pairs = hidden_size // 2
    frequencies = np.linspace(*FREQUENCY_RANGE, pairs)
    query = np.zeros((hidden_size, heads, head_size))
    key = np.zeros((hidden_size, heads, head_size))
    for head in range(heads):
        shift = -1 if head % 2 == 0 else 1
        for column, k in enumerate(range(head, pairs, heads)):
            angle = shift * frequencies[k]
            # row vector [sin x, cos x] @ [[cos a, -sin a], [sin a, cos a]] = [sin(x+a), cos(x+a)]
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            rows, columns = slice(2 * k, 2 * k + 2), slice(2 * column, 2 * column + 2)
            query[rows, head, columns] = scale * rotation
            key[rows, head, columns] = scale * np.eye(2)
    return query, key


def check_neighbour_shape(hidden_size: int, heads: int) -> None:
    """The pattern needs an even head size and as many sinusoid pairs per head as it has columns."""
    if hidden_size % heads or (hidden_size // heads) % 2:
        raise ValueError(f"neighbour attention init needs an even head size (hidden "
                         f"{hidden_size} / {heads} heads); use attention init 'random'")


def default_scale(head_size: int) -> float:
    """The kernels' scale: the score of the neighbour grows like 0.8 · scale² · sqrt(head_size)
    (the position part of a LayerNorm-ed embedding, head_size of its coordinates, over
    sqrt(head_size)), so scale = (64 / head_size)^(1/4) gives every width the ~6 logits of
    advantage a 64-wide head has at scale 1 (BERT-base's and the low-resource recipe's heads)."""
    return (64.0 / head_size) ** 0.25


def apply_neighbour_init(encoder, scale: float | None = None) -> None:
    """Overwrites `encoder`'s position table and layer 0's query/key kernels (biases stay 0) with
    the neighbour pattern. The encoder must be built (any BertEncoder after construction is)."""
    config = encoder.config
    hidden, heads = config.hidden_size, config.num_attention_heads
    check_neighbour_shape(hidden, heads)
    if scale is None:
        scale = default_scale(hidden // heads)
    table = sinusoid_table(config.max_position_embeddings, hidden,
                           _amplitude(config.initializer_range))
    encoder.embeddings.position_embeddings.assign(table.astype(np.float32))
    query, key = neighbour_kernels(hidden, heads, scale)
    attention = encoder.transformer_layers[0].attention
    attention.query.kernel.assign(query.astype(attention.query.kernel.dtype))
    attention.key.kernel.assign(key.astype(attention.key.kernel.dtype))
