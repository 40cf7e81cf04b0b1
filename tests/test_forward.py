"""One forward pass: the transformer block's row modes, and `BertTaskModel.forward` (packed tokens,
another mask value) against `model(inputs)` for every task model."""

import numpy as np
import pytest

import bert_tf
from bert_tf.config import BertConfig
from bert_tf.layers.packed import packing_index
from bert_tf.layers import BertTransformerBlock, attention_bias_from_mask
from bert_tf.models import BertClassifier, BertPretrainer, BertSpanLabeler, BertTokenClassifier
from tests.harness import random_batch

TINY = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=16)


def holey_batch():
    """4 rows of 10: right padding, a hole in the middle, and a row whose [CLS] position is masked."""
    batch = random_batch(TINY, batch=4, seq=10, seed=3)
    batch["attention_mask"][2, 0] = 0
    batch["attention_mask"][0, 3:6] = 0
    return batch


def test_block_rows_at_positions_and_packed_equal_the_full_block():
    block = BertTransformerBlock(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    rng = np.random.default_rng(0)
    mask = holey_batch()["attention_mask"]                                       # [4, 10]
    hidden = rng.normal(size=(4, 10, 32)).astype("float32")
    bias = attention_bias_from_mask(mask)
    full = np.asarray(block(hidden, attention_bias=bias))                        # [4, 10, 32]
    queries = np.array([[0, 2], [4, 0], [0, 1], [1, 1]], "int32")   # attended positions (and [CLS])
    expected_rows = np.take_along_axis(full, queries[:, :, None], axis=1)       # [4, 2, 32]
    rows = np.asarray(block(hidden, attention_bias=bias, query_positions=queries))
    np.testing.assert_allclose(rows, expected_rows, atol=1e-5)

    positions, inverse = packing_index(mask, token_bucket=8)      # padded with copies of index 0
    packed_in = hidden.reshape(40, 32)[np.asarray(positions)]                    # [n', 32]
    packed = np.asarray(block(packed_in, attention_bias=bias, packing=(positions, inverse)))
    assert packed.shape == packed_in.shape
    real = np.asarray(inverse) > 0
    np.testing.assert_allclose(packed[np.asarray(inverse)[real] - 1], full.reshape(40, 32)[real],
                               atol=1e-5)
    packed_rows = block(packed_in, attention_bias=bias, query_positions=queries,
                        packing=(positions, inverse))
    np.testing.assert_allclose(np.asarray(packed_rows), expected_rows, atol=1e-5)

    with pytest.raises(ValueError, match="needs the attention_bias"):
        block(packed_in, packing=(positions, inverse))
    with pytest.raises(ValueError, match=r"\(positions, inverse\) pair"):
        block(packed_in, attention_bias=bias, packing=positions)


@pytest.mark.parametrize("factory,extra", [
    (lambda e: BertClassifier(e, 3), {}),
    (lambda e: BertTokenClassifier(e, 5), {}),
    (lambda e: BertSpanLabeler(e), {}),
    (lambda e: BertPretrainer(e), {"masked_lm_positions": np.array([[1, 2], [3, 0], [1, 1], [1, 0]],
                                                                   "int32")}),
], ids=["classifier", "token_classifier", "span_labeler", "pretrainer"])
def test_forward_packed_and_with_another_mask_value_is_the_model(factory, extra):
    model = factory(bert_tf.BertEncoder(TINY))
    inputs = {**holey_batch(), **extra}
    expected = {k: np.asarray(v) for k, v in model(inputs, training=False).items()}
    plain = model.forward(inputs)
    lite = model.forward(inputs, mask_value=-100.0)
    packed = model.forward(inputs, packing=packing_index(inputs["attention_mask"], token_bucket=8))
    computed = inputs["attention_mask"].astype(bool)
    computed[:, 0] = True                                          # packing keeps every [CLS]
    for name, value in expected.items():
        np.testing.assert_array_equal(np.asarray(plain[name]), value)
        np.testing.assert_allclose(np.asarray(lite[name]), value, atol=1e-5)
        got = np.asarray(packed[name])
        assert got.shape == value.shape and got.dtype == value.dtype
        if isinstance(model, (BertTokenClassifier, BertSpanLabeler)):   # per token: [b, t, ...]
            assert not np.any(got[~computed]), "padding positions must come back as zeros"
            got, value = got[computed], value[computed]
        np.testing.assert_allclose(got, value, atol=1e-5)


def test_task_graphs_run_the_last_layer_for_the_rows_their_heads_read(monkeypatch):
    """The classifier's pooler gets the [CLS] row alone and the pre-trainer's [CLS] + the masked
    positions: the last layer computed those rows only; per-token heads get every position."""
    seen = []
    encoder = bert_tf.BertEncoder(TINY)
    pooler_call = encoder.pooler.call
    monkeypatch.setattr(encoder.pooler, "call", lambda rows: seen.append(rows.shape) or
                        pooler_call(rows))
    batch = holey_batch()
    BertClassifier(encoder, 2)(batch)
    pretrainer = BertPretrainer(encoder)
    pretrainer({**batch, "masked_lm_positions": np.zeros([4, 3], "int32")})
    assert [tuple(shape) for shape in seen[-2:]] == [(4, 1, 32), (4, 4, 32)]
    tagger = BertTokenClassifier(encoder, 3)
    head_call = tagger.classifier.call
    monkeypatch.setattr(tagger.classifier, "call", lambda rows: seen.append(rows.shape) or
                        head_call(rows))
    tagger(batch)
    assert tuple(seen[-1]) == (4, 10, 32)


def test_keras_files_keep_the_encoder_as_one_unit(tmp_path):
    """The graph calls the encoder's layers one by one, but the `.keras` weights keep the layout
    of a graph that called the whole encoder (`layers/bert_encoder/...`), so files saved before
    and after the change load alike."""
    import io
    import zipfile

    import h5py
    model = BertClassifier(bert_tf.BertEncoder(TINY), 2)
    assert model.layers[3] is model.encoder and model.get_layer("classifier") is model.classifier
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        saved = sorted(name for name in weights["layers"] if not name.startswith("input_layer"))
        assert saved == ["bert_encoder", "dense", "hash_dropout"]
        assert "bert_transformer_block_1" in weights["layers/bert_encoder/layers"]
