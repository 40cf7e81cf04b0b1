"""BertEncoder and task models: numerics against Hugging Face BertModel (PyTorch), real MiniLM-L6
weights, HF weights in/out, strict loading, serialization and mixed precision."""

import json
import os

import keras
import numpy as np
import pytest
import torch
import transformers

import bert_tf
from bert_tf.config import BertConfig, ConfigError
from bert_tf.models import BertClassifier, BertPretrainer, BertSpanLabeler, BertTokenClassifier
from bert_tf.weights import WeightsError
from bert_tf.weights.safetensors_io import read_safetensors, write_safetensors
from tests.harness import random_batch, run_model_test

PARITY_CONFIGS = {
    "tiny_gelu": dict(vocab_size=97, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=32, type_vocab_size=2),
    "gelu_new_3_types": dict(vocab_size=120, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                             intermediate_size=96, hidden_act="gelu_new", max_position_embeddings=40,
                             type_vocab_size=3),
    "relu_eps": dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=80, hidden_act="relu", max_position_embeddings=16,
                     type_vocab_size=2, layer_norm_eps=1e-6),
}


def hf_reference(config_kwargs, directory, seed=0):
    """A random-init transformers.BertModel saved to `directory`; weights scaled up so that a wrong
    layout cannot hide behind tiny activations."""
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**config_kwargs, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0, initializer_range=0.2)
    model = transformers.BertModel(hf_config).eval()
    model.save_pretrained(directory)
    return model


def hf_outputs(model, batch):
    with torch.no_grad():
        out = model(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()},
                    output_hidden_states=True)
    return out.last_hidden_state.numpy(), out.pooler_output.numpy(), [h.numpy() for h in out.hidden_states]


def max_diff_unpadded(a, b, mask):
    return float(np.abs((a - b) * mask[..., None]).max())


@pytest.mark.parametrize("name", sorted(PARITY_CONFIGS))
def test_random_weight_parity_with_hf_bert_model(name, tmp_path):
    kwargs = PARITY_CONFIGS[name]
    reference = hf_reference(kwargs, tmp_path / "hf")
    encoder = bert_tf.BertEncoder.from_pretrained(str(tmp_path / "hf"), output_hidden_states=True)
    assert encoder.config.hidden_act == kwargs.get("hidden_act", "gelu")
    batch = random_batch(encoder.config, batch=4, seq=min(14, kwargs["max_position_embeddings"]))
    ours = encoder(batch)
    seq_ref, pooled_ref, hidden_ref = hf_outputs(reference, batch)
    mask = batch["attention_mask"]
    assert max_diff_unpadded(np.asarray(ours["sequence_output"]), seq_ref, mask) <= 1e-5
    assert float(np.abs(np.asarray(ours["pooled_output"]) - pooled_ref).max()) <= 1e-5
    assert len(ours["hidden_states"]) == len(hidden_ref) == kwargs["num_hidden_layers"] + 1
    for mine, theirs in zip(ours["hidden_states"], hidden_ref):
        assert max_diff_unpadded(np.asarray(mine), theirs, mask) <= 1e-5


def test_real_minilm_matches_published_reference_and_hf(minilm_dir):
    encoder = bert_tf.BertEncoder.from_pretrained(minilm_dir)
    ids = np.array([[101, 7592, 1010, 2026, 3899, 2003, 10140, 102]], "int32")
    out = encoder({"input_ids": ids})
    # Fixed reference values of this checkpoint for "Hello, my dog is cute" (first 5 dims).
    np.testing.assert_allclose(np.asarray(out["sequence_output"])[0, 0, :5],
                               [0.0230172, -0.0102777, 0.2201362, 0.5217358, -0.1170201], atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["pooled_output"])[0, :5],
                               [-0.074666, 0.039845, 0.027039, 0.022229, -0.034358], atol=1e-4)
    # Full outputs against transformers on the same files, on a padded batch.
    reference = transformers.BertModel.from_pretrained(minilm_dir).eval()
    batch = random_batch(encoder.config, batch=3, seq=20, seed=3)
    seq_ref, pooled_ref, _ = hf_outputs(reference, batch)
    ours = encoder(batch)
    assert max_diff_unpadded(np.asarray(ours["sequence_output"]), seq_ref, batch["attention_mask"]) <= 1e-5
    assert float(np.abs(np.asarray(ours["pooled_output"]) - pooled_ref).max()) <= 1e-5


def test_save_pretrained_loads_in_transformers(tmp_path):
    config = BertConfig(**PARITY_CONFIGS["gelu_new_3_types"], initializer_range=0.2)
    encoder = bert_tf.BertEncoder(config)
    batch = random_batch(config, batch=2, seq=10)
    ours = encoder(batch)
    encoder.save_pretrained(str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "model.safetensors"]
    reference = transformers.BertModel.from_pretrained(str(tmp_path / "out")).eval()
    assert reference.config.hidden_act == "gelu_new" and reference.config.type_vocab_size == 3
    seq_ref, pooled_ref, _ = hf_outputs(reference, batch)
    assert max_diff_unpadded(np.asarray(ours["sequence_output"]), seq_ref, batch["attention_mask"]) <= 1e-5
    assert float(np.abs(np.asarray(ours["pooled_output"]) - pooled_ref).max()) <= 1e-5


def test_pretrainer_heads_round_trip_through_hf_bert_for_pretraining(tmp_path):
    torch.manual_seed(1)
    hf_config = transformers.BertConfig(**PARITY_CONFIGS["tiny_gelu"], hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0, initializer_range=0.2)
    reference = transformers.BertForPreTraining(hf_config).eval()
    with torch.no_grad():  # non-zero biases so a dropped bias is visible
        reference.cls.predictions.bias.normal_()
    reference.save_pretrained(str(tmp_path / "hf"))
    model = BertPretrainer.from_pretrained(str(tmp_path / "hf"))
    batch = random_batch(model.encoder.config, batch=2, seq=10)
    positions = np.array([[1, 4, 0], [2, 3, 5]], "int32")
    ours = model({**batch, "masked_lm_positions": positions})
    with torch.no_grad():
        ref = reference(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
    ref_mlm = np.take_along_axis(ref.prediction_logits.numpy(), positions[:, :, None], axis=1)
    np.testing.assert_allclose(np.asarray(ours["mlm_logits"]), ref_mlm, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ours["nsp_logits"]), ref.seq_relationship_logits.numpy(), atol=1e-5)
    # Gradients too: our last layer runs for [CLS] and the masked positions only (the model's
    # graph), HF's for every position; the loss only sees those rows, so the gradients agree.
    import tensorflow as tf

    from bert_tf.models import pretraining_losses
    targets = {"masked_lm_ids": np.array([[5, 9, 0], [7, 1, 30]], "int32"),
               "masked_lm_weights": np.array([[1, 1, 0], [1, 1, 1]], "float32"),
               "next_sentence_labels": np.array([0, 1], "int32")}
    last = model.encoder.transformer_layers[-1]
    watched = [last.attention.query.kernel, last.intermediate.kernel,
               model.encoder.transformer_layers[0].attention.value.kernel,
               model.encoder.embeddings.word_embeddings]
    with tf.GradientTape() as tape:
        loss = pretraining_losses(model({**batch, "masked_lm_positions": positions}, training=True),
                                  targets)["loss"]
    grads = tape.gradient(loss, watched)
    out = reference(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
    mlm = out.prediction_logits[torch.arange(2)[:, None], torch.tensor(positions).long()]
    per_prediction = torch.nn.functional.cross_entropy(
        mlm.reshape(-1, mlm.shape[-1]), torch.tensor(targets["masked_lm_ids"]).long().reshape(-1),
        reduction="none")
    weights = torch.tensor(targets["masked_lm_weights"]).reshape(-1)
    their_loss = (per_prediction * weights).sum() / (weights.sum() + 1e-5) + \
        torch.nn.functional.cross_entropy(out.seq_relationship_logits,
                                          torch.tensor(targets["next_sentence_labels"]).long())
    their_loss.backward()
    assert float(loss) == pytest.approx(float(their_loss), rel=1e-5)
    layers = reference.bert.encoder.layer
    expected = [layers[-1].attention.self.query.weight.grad.T, layers[-1].intermediate.dense.weight.grad.T,
                layers[0].attention.self.value.weight.grad.T,
                reference.bert.embeddings.word_embeddings.weight.grad]
    for mine, theirs in zip(grads, expected):
        mine = np.asarray(tf.convert_to_tensor(mine)).reshape(theirs.shape)
        assert np.abs(mine).max() > 1e-6
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5 * float(theirs.abs().max()))
    # And back out: transformers reads our BertForPreTraining export to the same logits.
    model.save_pretrained(str(tmp_path / "ours"))
    again = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "ours")).eval()
    with torch.no_grad():
        ref2 = again(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
    np.testing.assert_allclose(ref2.prediction_logits.numpy(), ref.prediction_logits.numpy(), atol=1e-5)


def test_hf_loading_is_strict_and_names_every_problem(tmp_path):
    hf_reference(PARITY_CONFIGS["tiny_gelu"], tmp_path / "hf")
    path = tmp_path / "hf" / "model.safetensors"
    tensors = read_safetensors(str(path))
    del tensors["encoder.layer.1.output.dense.bias"]                                 # missing
    tensors["encoder.layer.0.attention.self.extra.weight"] = np.zeros((64, 64), "float32")  # extra
    tensors["pooler.dense.bias"] = np.zeros((65,), "float32")                        # mis-shaped
    write_safetensors(str(path), tensors)
    with pytest.raises(WeightsError) as info:
        bert_tf.BertEncoder.from_pretrained(str(tmp_path / "hf"))
    message = str(info.value)
    assert "bert/encoder/layer_1/output/dense/bias" in message
    assert "encoder.layer.0.attention.self.extra.weight" in message
    assert "pooler.dense.bias (= bert/pooler/dense/bias)" in message and "(65,)" in message


def test_config_validation_and_json_io(tmp_path):
    with pytest.raises(ConfigError, match="divisible"):
        BertConfig(hidden_size=100, num_attention_heads=3)
    with pytest.raises(ConfigError, match="hidden_act"):
        BertConfig(hidden_act="swish")
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        BertConfig(num_hidden_layers=0)
    with pytest.raises(ConfigError, match="Unknown BertConfig preset"):
        BertConfig.preset("huge")
    assert [BertConfig.preset(n).num_hidden_layers for n in BertConfig.preset_names()] == [2, 4, 4, 8, 12, 24]
    # google-research/bert's bert_config.json has no layer_norm_eps: BERT's 1e-12 applies.
    google = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "hidden_size": 256, "initializer_range": 0.02, "intermediate_size": 1024,
              "max_position_embeddings": 512, "num_attention_heads": 4, "num_hidden_layers": 4,
              "type_vocab_size": 2, "vocab_size": 30522}
    (tmp_path / "bert_config.json").write_text(json.dumps(google))
    config = BertConfig.from_json_file(tmp_path / "bert_config.json")
    assert config.layer_norm_eps == 1e-12 and config.hidden_size == 256
    config.to_json_file(tmp_path / "config.json")
    assert transformers.BertConfig.from_json_file(str(tmp_path / "config.json")).hidden_size == 256
    assert BertConfig.from_json_file(tmp_path / "config.json") == config
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BertConfig.from_json_file(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="missing required"):
        BertConfig.from_dict({"hidden_size": 8})


TINY = BertConfig.preset("tiny", vocab_size=90, max_position_embeddings=32)


@pytest.mark.parametrize("factory,extra,shapes", [
    (lambda e: e, {}, {"sequence_output": (3, 12, 128), "pooled_output": (3, 128)}),
    (lambda e: BertPretrainer(e), {"masked_lm_positions": np.array([[1, 2], [3, 0], [1, 1]], "int32")},
     {"mlm_logits": (3, 2, 90), "nsp_logits": (3, 2)}),
    (lambda e: BertClassifier(e, 3), {}, {"logits": (3, 3)}),
    (lambda e: BertClassifier(e, 1), {}, {"logits": (3, 1)}),
    (lambda e: BertTokenClassifier(e, 7), {}, {"logits": (3, 12, 7)}),
    (lambda e: BertSpanLabeler(e), {}, {"start_logits": (3, 12), "end_logits": (3, 12)}),
], ids=["encoder", "pretrainer", "classifier", "regression", "token_classifier", "span_labeler"])
def test_every_model_builds_calls_and_round_trips(factory, extra, shapes, tmp_path):
    model = factory(bert_tf.BertEncoder(TINY))
    run_model_test(model, {**random_batch(TINY), **extra}, shapes, tmp_path)


def test_optional_inputs_default_like_bert():
    encoder = bert_tf.BertEncoder(TINY)
    ids = random_batch(TINY, pad_rows=False)["input_ids"]
    full = encoder({"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)})
    for short in (encoder(ids), encoder({"input_ids": ids.astype("int64")})):
        np.testing.assert_array_equal(np.asarray(short["sequence_output"]), np.asarray(full["sequence_output"]))
    with pytest.raises(ValueError, match="Unknown BERT input"):
        encoder({"input_ids": ids, "segment_ids": ids})


@pytest.mark.parametrize("policy,atol", [("mixed_float16", 2e-2), ("mixed_bfloat16", 5e-2)])
def test_mixed_precision_is_finite_and_close_to_float32(policy, atol, minilm_dir):
    reference = bert_tf.BertEncoder.from_pretrained(minilm_dir)
    batch = random_batch(reference.config, batch=2, seq=16, seed=5)
    expected = reference(batch)
    keras.mixed_precision.set_global_policy(policy)
    mixed = bert_tf.BertEncoder.from_pretrained(minilm_dir)
    assert mixed.embeddings.word_embeddings.dtype == "float32"  # variables stay float32
    got = mixed(batch)
    for name in ("sequence_output", "pooled_output"):
        value = np.asarray(got[name]).astype("float32")
        assert np.all(np.isfinite(value))
        scale = max(1.0, float(np.abs(np.asarray(expected[name])).max()))
        diff = np.abs(value - np.asarray(expected[name]))
        if name == "sequence_output":
            diff = diff * batch["attention_mask"][..., None]
        assert float(diff.max()) / scale <= atol, (name, float(diff.max()))


def test_classifier_runs_the_last_layer_for_cls_only_with_hf_logits_and_gradients(tmp_path):
    """BertClassifier runs its last layer for position 0 only (`query_positions` [CLS]):
    logits, loss and gradients equal HF BertForSequenceClassification's, which computes the whole
    last layer; the pooled output equals the full encoder's, masks with holes and a masked [CLS]
    position included."""
    import tensorflow as tf

    kwargs = PARITY_CONFIGS["tiny_gelu"]
    reference = hf_reference(kwargs, tmp_path / "hf")
    torch.manual_seed(1)
    theirs = transformers.BertForSequenceClassification.from_pretrained(
        str(tmp_path / "hf"), num_labels=3, classifier_dropout=0.0).train()
    ours = BertClassifier(bert_tf.BertEncoder.from_pretrained(str(tmp_path / "hf")), 3)
    head = ours.get_layer("classifier")
    head.kernel.assign(theirs.classifier.weight.detach().numpy().T * 10)
    head.bias.assign(theirs.classifier.bias.detach().numpy())
    with torch.no_grad():
        theirs.classifier.weight.mul_(10)
    batch = random_batch(ours.encoder.config, batch=4, seq=14)
    batch["attention_mask"][2, 0] = 0
    labels = np.array([0, 2, 1, 2])

    cls_only = ours.encoder.pooler(ours.encoder.encode(
        batch, query_positions=np.zeros([4, 1], "int32")))    # what the classifier's graph runs
    np.testing.assert_allclose(np.asarray(cls_only), hf_outputs(reference, batch)[1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(cls_only),
                               np.asarray(ours.encoder(batch)["pooled_output"]), atol=1e-5)
    with tf.GradientTape() as tape:
        logits = ours(batch, training=True)["logits"]    # dropout is 0 in these weights' config
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    last = ours.encoder.transformer_layers[-1]
    watched = [last.attention.query.kernel, last.attention.key.kernel, last.intermediate.kernel,
               ours.encoder.transformer_layers[0].attention.value.kernel]
    grads = tape.gradient(loss, watched)
    out = theirs(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()},
                 labels=torch.tensor(labels))
    out.loss.backward()
    np.testing.assert_allclose(logits.numpy(), out.logits.detach().numpy(), atol=1e-5, rtol=1e-5)
    assert float(loss) == pytest.approx(float(out.loss), rel=1e-5)
    layers = theirs.bert.encoder.layer
    hidden = kwargs["hidden_size"]
    expected = [layers[-1].attention.self.query.weight.grad, layers[-1].attention.self.key.weight.grad,
                layers[-1].intermediate.dense.weight.grad, layers[0].attention.self.value.weight.grad]
    for mine, reference_grad in zip(grads, expected):
        mine = np.asarray(mine).reshape(hidden, -1)
        assert np.abs(mine).max() > 1e-6
        reference_grad = reference_grad.numpy().T
        np.testing.assert_allclose(mine, reference_grad, atol=1e-5 * np.abs(reference_grad).max())
