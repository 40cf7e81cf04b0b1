"""The encoder's attention probabilities on request (issue 22 item 1): equal to Hugging Face
`BertModel(output_attentions=True)` (eager attention) on random and on the real MiniLM weights,
padding included; they survive the `.keras` round trip; asking for them changes no other output."""

import numpy as np
import pytest
import torch
import transformers

import bert_tf
from tests.harness import random_batch, run_model_test
from tests.test_encoder import PARITY_CONFIGS, hf_reference


def hf_attentions(model, batch):
    with torch.no_grad():
        out = model(**{k: torch.tensor(np.asarray(v), dtype=torch.long) for k, v in batch.items()},
                    output_attentions=True)
    return np.stack([a.numpy() for a in out.attentions])          # [layers, b, heads, s, s]


@pytest.mark.parametrize("name", sorted(PARITY_CONFIGS))
def test_random_weight_attentions_equal_hf(name, tmp_path):
    kwargs = PARITY_CONFIGS[name]
    hf_reference(kwargs, tmp_path / "hf")
    reference = transformers.BertModel.from_pretrained(str(tmp_path / "hf"),
                                                       attn_implementation="eager").eval()
    encoder = bert_tf.BertEncoder.from_pretrained(str(tmp_path / "hf"), output_attentions=True)
    batch = random_batch(encoder.config, batch=4, seq=min(14, kwargs["max_position_embeddings"]))
    ours = np.asarray(encoder(batch)["attentions"])
    theirs = hf_attentions(reference, batch)
    assert ours.shape == theirs.shape == (kwargs["num_hidden_layers"], 4,
                                          kwargs["num_attention_heads"], batch["input_ids"].shape[1],
                                          batch["input_ids"].shape[1])
    assert np.abs(ours - theirs).max() <= 1e-5        # padded query rows and key columns too
    np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-5)
    assert ours[:, 3][..., batch["attention_mask"][3] == 0].max() == 0.0   # no weight on padding


def test_real_minilm_attentions_equal_hf(minilm_dir):
    tokenizer = bert_tf.BertTokenizer.from_vocab_file(f"{minilm_dir}/vocab.txt", sequence_length=24)
    batch = {k: np.asarray(v) for k, v in tokenizer(
        ["Hello, my dog is cute", "A truly awful, tedious film.", "ok"]).items()}
    encoder = bert_tf.BertEncoder.from_pretrained(minilm_dir, output_attentions=True)
    reference = transformers.BertModel.from_pretrained(minilm_dir,
                                                       attn_implementation="eager").eval()
    ours = np.asarray(encoder(batch)["attentions"])
    assert ours.shape == (6, 3, 12, 24, 24)
    assert np.abs(ours - hf_attentions(reference, batch)).max() <= 1e-5


def test_attentions_round_trip_and_change_nothing_else(tmp_path):
    config = bert_tf.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=16)
    import keras
    keras.utils.set_random_seed(0)
    plain = bert_tf.BertEncoder(config)
    with_attention = bert_tf.BertEncoder(config, output_attentions=True)
    with_attention.set_weights(plain.get_weights())
    batch = random_batch(config, batch=3, seq=10)
    outputs, reloaded = run_model_test(
        with_attention, batch, {"sequence_output": (3, 10, 16), "pooled_output": (3, 16),
                                "attentions": (2, 3, 2, 10, 10)}, tmp_path)
    assert reloaded.output_attentions
    expected = plain(batch)
    assert set(expected) == {"sequence_output", "pooled_output"}   # not computed unless asked
    for name in expected:
        np.testing.assert_array_equal(outputs[name], np.asarray(expected[name]))
