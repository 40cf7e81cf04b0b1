"""The neighbour-attention initialization of pre-training from scratch
(`bert_tf.models.neighbour_init`): layer 0's heads start looking one token back or ahead."""

import numpy as np
import pytest

from bert_tf.models.neighbour_init import (apply_neighbour_init, check_neighbour_shape,
                                           neighbour_kernels, sinusoid_table)


def test_each_rotation_moves_a_position_to_its_neighbour():
    """On the sinusoid coordinates, query-kernel · key-kernelᵀ maps position i's vector to position
    i - 1's (even heads) or i + 1's (odd heads): the score q_i · k_j is p_{i±1} · p_j."""
    hidden, heads = 16, 4
    table = sinusoid_table(32, hidden, amplitude=1.0)                     # [32, 16]
    query, key = neighbour_kernels(hidden, heads)                         # [16, 4, 4] each
    for head in range(heads):
        shift = -1 if head % 2 == 0 else 1
        q, k = table @ query[:, head, :], table @ key[:, head, :]          # [32, 4]
        np.testing.assert_allclose(q[5:-5], k[5 + shift:len(k) - 5 + shift], atol=1e-12)


def test_the_position_kernel_is_peaked():
    table = sinusoid_table(64, 128, amplitude=1.0)
    similarity = table @ table.T / 64                                     # mean_k cos(w_k (i-j))
    np.testing.assert_allclose(np.diag(similarity), 1.0)
    off = similarity[10, 11:30]
    assert np.abs(off).max() < 0.15, off


def test_layer_0_attends_to_the_previous_and_next_token():
    import keras

    from bert_tf.config import BertConfig
    from bert_tf.models import BertEncoder

    config = BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64)
    keras.utils.set_random_seed(0)
    encoder = BertEncoder(config)
    before = encoder.transformer_layers[1].attention.query.kernel.numpy().copy()
    apply_neighbour_init(encoder)
    ids = np.random.default_rng(0).integers(5, 300, size=(4, 40)).astype(np.int32)
    # Recompute layer 0's attention from its inputs: the embeddings' output and its kernels.
    x = encoder.embeddings(ids, np.zeros_like(ids), training=False).numpy()   # [4, 40, 64]
    attention = encoder.transformer_layers[0].attention
    q = np.einsum("bsh,hnd->bsnd", x, attention.query.kernel.numpy())
    k = np.einsum("bsh,hnd->bsnd", x, attention.key.kernel.numpy())
    scores = np.einsum("bqnd,bknd->bnqk", q, k) / np.sqrt(q.shape[-1])     # [4, 2, 40, 40]
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    rows = np.arange(1, 39)
    for head in range(2):
        shift = -1 if head % 2 == 0 else 1
        share = probs[:, head, rows, rows + shift].mean()
        assert share > 0.5, (head, share)               # uniform would be 1/40
    # nothing else changed: the other layers keep their random draw
    np.testing.assert_array_equal(encoder.transformer_layers[1].attention.query.kernel.numpy(),
                                  before)


def test_an_odd_head_size_is_refused():
    with pytest.raises(ValueError, match="even head size"):
        check_neighbour_shape(36, 4)                     # head size 9
    with pytest.raises(ValueError, match="even head size"):
        check_neighbour_shape(30, 4)


def test_pretraining_builds_the_pattern_only_when_asked():
    import keras

    from bert_tf.config import BertConfig
    from bert_tf.models.neighbour_init import neighbour_kernels
    from bert_tf.training.pretraining import build_pretrainer

    config = BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=32)
    keras.utils.set_random_seed(0)
    random = build_pretrainer(config).encoder
    keras.utils.set_random_seed(0)
    neighbours = build_pretrainer(config, attention_init="neighbours").encoder
    table = neighbours.embeddings.position_embeddings.numpy()
    np.testing.assert_allclose(table, sinusoid_table(32, 64, 2 * 0.02 * np.sqrt(2)), atol=1e-7)
    query, key = neighbour_kernels(64, 2, scale=(64 / 32) ** 0.25)
    np.testing.assert_allclose(neighbours.transformer_layers[0].attention.query.kernel.numpy(),
                               query, atol=1e-7)
    np.testing.assert_allclose(neighbours.transformer_layers[0].attention.key.kernel.numpy(), key,
                               atol=1e-7)
    # the default is google's draw: the same seed gives the same random table, not sinusoids
    assert np.abs(random.embeddings.position_embeddings.numpy() - table).max() > 0.01
    np.testing.assert_array_equal(random.embeddings.word_embeddings.numpy(),
                                  neighbours.embeddings.word_embeddings.numpy())
