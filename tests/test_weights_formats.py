"""Weights in from google-research/bert TF1 checkpoints, KerasHub presets and Model Garden checkpoints.

Every reference is a model nobody here wrote (transformers.BertModel, keras_hub.models.BertBackbone,
official.nlp.modeling.networks.BertEncoderV2), given random weights *everywhere* (biases and LayerNorm
parameters too, so a swapped or dropped bias shows), run on a padded batch, and compared with our
encoder loaded from that reference's own file format: max |diff| on unpadded positions ≤ 1e-5.
"""

import json
import os
import re

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import torch
import transformers
from official.nlp.modeling import networks as garden_networks

from bert_tf import BertConfig, BertEncoder
from bert_tf.weights import WeightsError, detect_format
from bert_tf.weights.google import save_google_checkpoint
from bert_tf.weights.keras_hub import from_keras_hub_backbone, save_keras_hub_preset, to_keras_hub_backbone
from bert_tf.weights.model_garden import from_model_garden_encoder

# A tiny config with nothing at its default (3 token types, 24 positions) so mapped shapes are checked.
VOCAB, HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS, TYPES = 61, 32, 2, 4, 48, 24, 3
TOLERANCE = 1e-5


def padded_batch(seed=0):
    """int32 ids/types/mask [3, 10] with real lengths 10, 6 and 3."""
    rng = np.random.default_rng(seed)
    lengths = [10, 6, 3]
    mask = np.array([[1] * n + [0] * (10 - n) for n in lengths], np.int32)
    ids = rng.integers(1, VOCAB, size=(3, 10)).astype(np.int32) * mask
    types = rng.integers(0, TYPES, size=(3, 10)).astype(np.int32) * mask
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def assert_parity(ours, sequence, pooled, mask):
    real = mask.astype(bool)
    seq_diff = np.max(np.abs(np.asarray(ours["sequence_output"])[real] - np.asarray(sequence)[real]))
    pooled_diff = np.max(np.abs(np.asarray(ours["pooled_output"]) - np.asarray(pooled)))
    assert seq_diff <= TOLERANCE and pooled_diff <= TOLERANCE, (seq_diff, pooled_diff)


def randomize(named_arrays, seed):
    """name → new random array: N(1, 0.1) for LayerNorm scales, N(0, 0.1) for everything else."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in named_arrays:
        center = 1.0 if re.search(r"gamma|LayerNorm\.weight|layer_norm.*weight", name) else 0.0
        out[name] = (center + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return out


def randomize_keras_weights(weights, seed):
    values = randomize([(f"{i}/{w.path}", tuple(w.shape)) for i, w in enumerate(weights)], seed)
    for (name, value), w in zip(values.items(), weights):
        w.assign(value)


# ------------------------------------------------------------------ google-research/bert TF1
def hf_reference(seed=0):
    """A transformers.BertModel computing google's tanh gelu ("gelu_new"), random weights."""
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE, max_position_embeddings=POSITIONS, type_vocab_size=TYPES,
        hidden_act="gelu_new", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="eager")
    model = transformers.BertModel(config).eval()
    state = model.state_dict()
    values = randomize([(k, tuple(v.shape)) for k, v in state.items() if k != "embeddings.position_ids"],
                       seed)
    model.load_state_dict({**state, **{k: torch.from_numpy(v) for k, v in values.items()}})
    return model


def hf_forward(model, batch):
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(batch["input_ids"]).long(),
                    token_type_ids=torch.from_numpy(batch["token_type_ids"]).long(),
                    attention_mask=torch.from_numpy(batch["attention_mask"]).long())
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def google_names(hf_state):
    """HF BertModel tensors → google-research/bert variable names and layouts, written out here
    independently of bert_tf's converter."""
    google = {}
    for name, tensor in hf_state.items():
        if name == "embeddings.position_ids":
            continue
        value = tensor.numpy()
        path, kind = name.rsplit(".", 1)
        path = "bert/" + re.sub(r"^encoder\.layer\.(\d+)", r"encoder/layer_\1", path).replace(".", "/")
        if path.endswith("_embeddings"):
            google[path] = value
        elif path.endswith("LayerNorm"):
            google[f"{path}/{'gamma' if kind == 'weight' else 'beta'}"] = value
        else:  # torch Linear weight [out, in]; TF1 dense kernel [in, out]
            kernel_or_bias = "kernel" if kind == "weight" else "bias"
            google[f"{path}/{kernel_or_bias}"] = value.T if kind == "weight" else value
    return google


def write_tf1_checkpoint(directory, tensors, hidden_act="gelu", prefix="bert_model.ckpt"):
    """What google-research/bert's run_pretraining.py leaves: bert_config.json + a tf.compat.v1 Saver
    checkpoint of variables under exactly these names."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump({"vocab_size": VOCAB, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                   "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE,
                   "hidden_act": hidden_act, "hidden_dropout_prob": 0.1,
                   "attention_probs_dropout_prob": 0.1, "max_position_embeddings": POSITIONS,
                   "type_vocab_size": TYPES, "initializer_range": 0.02}, f)
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in tensors.items()]
        assert [v.op.name for v in variables] == list(tensors)
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(directory, prefix), write_meta_graph=False)


@pytest.fixture(scope="module")
def google_reference():
    model = hf_reference(seed=1)
    return model, google_names(model.state_dict())


def test_google_tf1_checkpoint_matches_reference_and_round_trips(tmp_path, google_reference):
    model, tensors = google_reference
    # what an AdamWeightDecayOptimizer run also saves; the loader must drop these by rule
    optimizer_state = {f"{name}/{slot}": np.zeros_like(value) for name, value in tensors.items()
                       for slot in ("adam_m", "adam_v")}
    optimizer_state["global_step"] = np.array(1000, np.int64)
    write_tf1_checkpoint(tmp_path / "google", {**tensors, **optimizer_state})
    assert detect_format(tmp_path / "google") == "google"

    encoder = BertEncoder.from_pretrained(tmp_path / "google")
    assert encoder.config.hidden_act == "gelu_tanh"     # google's "gelu" is the tanh approximation
    batch = padded_batch()
    sequence, pooled = hf_forward(model, batch)
    assert_parity(encoder(batch), sequence, pooled, batch["attention_mask"])

    rng = np.random.default_rng(7)
    heads = {"cls/seq_relationship/output_weights": rng.standard_normal((2, HIDDEN)).astype(np.float32),
             "cls/seq_relationship/output_bias": rng.standard_normal((2,)).astype(np.float32)}
    save_google_checkpoint(encoder, tmp_path / "saved")
    save_google_checkpoint(encoder, tmp_path / "saved", heads=heads)   # into an existing directory
    assert sorted(os.listdir(tmp_path / "saved")) == [
        "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index"]
    saved = dict(tf.train.list_variables(str(tmp_path / "saved" / "bert_model.ckpt")))
    assert sorted(saved) == sorted({**tensors, **heads})
    reader = tf.train.load_checkpoint(str(tmp_path / "saved" / "bert_model.ckpt"))
    for name, value in {**tensors, **heads}.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value)
    with open(tmp_path / "saved" / "bert_config.json") as f:
        assert json.load(f)["hidden_act"] == "gelu"
    reloaded = BertEncoder.from_pretrained(tmp_path / "saved")
    assert_parity(reloaded(batch), sequence, pooled, batch["attention_mask"])


def test_google_checkpoint_mismatch_names_every_offender(tmp_path, google_reference):
    _, tensors = google_reference
    broken = dict(tensors)
    del broken["bert/pooler/dense/bias"]                                        # missing
    broken["bert/encoder/layer_1/attention/self/query/kernel"] = np.zeros((HIDDEN, HIDDEN + 1), np.float32)
    broken["bert/encoder/layer_0/attention/self/rotary/kernel"] = np.zeros((2,), np.float32)  # extra
    write_tf1_checkpoint(tmp_path / "broken", broken)
    with pytest.raises(WeightsError) as error:
        BertEncoder.from_pretrained(tmp_path / "broken")
    message = str(error.value)
    for name in ("bert/pooler/dense/bias", "bert/encoder/layer_1/attention/self/query/kernel",
                 "bert/encoder/layer_0/attention/self/rotary/kernel"):
        assert name in message, message
    assert "(32, 33)" in message


def test_google_unknown_optimizer_like_names_are_not_ignored(tmp_path, google_reference):
    # Only the documented optimizer suffixes are dropped: a name merely containing "adam" is an error.
    _, tensors = google_reference
    write_tf1_checkpoint(tmp_path / "odd", {**tensors, "bert/adam_scale": np.ones((2,), np.float32)})
    with pytest.raises(WeightsError, match="bert/adam_scale"):
        BertEncoder.from_pretrained(tmp_path / "odd")


def test_google_training_output_dir_and_exact_gelu_round_trip(tmp_path, google_reference):
    # run_pretraining.py leaves model.ckpt-STEP + a `checkpoint` state file, not bert_model.ckpt
    _, tensors = google_reference
    write_tf1_checkpoint(tmp_path / "run", tensors, prefix="model.ckpt-20")
    encoder = BertEncoder.from_pretrained(tmp_path / "run")
    np.testing.assert_array_equal(encoder.embeddings.token_type_embeddings.numpy(),
                                  tensors["bert/embeddings/token_type_embeddings"])
    # google has no exact-erf gelu: saved as "gelu" plus a marker bert_tf reads back exactly
    exact = BertEncoder(BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=1,
                                   num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                                   type_vocab_size=TYPES))
    save_google_checkpoint(exact, tmp_path / "exact")
    with open(tmp_path / "exact" / "bert_config.json") as f:
        assert json.load(f)["hidden_act"] == "gelu"
    reloaded = BertEncoder.from_pretrained(tmp_path / "exact")
    assert reloaded.config.hidden_act == "gelu"
    batch = padded_batch(seed=8)
    np.testing.assert_array_equal(reloaded(batch)["sequence_output"], exact(batch)["sequence_output"])


def test_huggingface_mismatch_names_every_offender(tmp_path, google_reference):
    model, _ = google_reference
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    del state["encoder.layer.0.output.dense.bias"]
    state["embeddings.token_type_embeddings.weight"] = np.zeros((TYPES + 2, HIDDEN), np.float32)
    state["encoder.layer.1.attention.self.extra.weight"] = np.zeros((2, 2), np.float32)
    from safetensors.numpy import save_file
    os.makedirs(tmp_path / "hf")
    save_file(state, str(tmp_path / "hf" / "model.safetensors"))
    model.config.to_json_file(str(tmp_path / "hf" / "config.json"))
    assert detect_format(tmp_path / "hf") == "huggingface"
    with pytest.raises(WeightsError) as error:
        BertEncoder.from_pretrained(tmp_path / "hf")
    message = str(error.value)
    for name in ("layer_0/output/dense/bias", "token_type_embeddings"):
        assert name in message, message
    # the extra tensor is named as HF or as its canonical translation, either way findable
    assert re.search(r"layer[._]1[./]attention[./]self[./]extra", message), message


# ------------------------------------------------------------------ KerasHub
@pytest.fixture(scope="module")
def keras_hub_backbone():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=HIDDEN,
        intermediate_dim=INTERMEDIATE, max_sequence_length=POSITIONS, num_segments=TYPES)
    randomize_keras_weights(backbone.weights, seed=2)
    return backbone


def keras_hub_forward(backbone, batch):
    out = backbone({"token_ids": batch["input_ids"], "segment_ids": batch["token_type_ids"],
                    "padding_mask": batch["attention_mask"]})
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def test_keras_hub_preset_matches_backbone(tmp_path, keras_hub_backbone):
    keras_hub_backbone.save_to_preset(str(tmp_path / "preset"))
    assert detect_format(tmp_path / "preset") == "keras_hub"
    encoder = BertEncoder.from_pretrained(tmp_path / "preset")
    assert encoder.config.hidden_act == "gelu_tanh" and encoder.config.type_vocab_size == TYPES
    batch = padded_batch(seed=3)
    assert_parity(encoder(batch), *keras_hub_forward(keras_hub_backbone, batch), batch["attention_mask"])


def test_keras_hub_live_backbone_both_ways(tmp_path, keras_hub_backbone):
    batch = padded_batch(seed=4)
    expected = keras_hub_forward(keras_hub_backbone, batch)
    encoder = from_keras_hub_backbone(keras_hub_backbone, BertEncoder)
    assert_parity(encoder(batch), *expected, batch["attention_mask"])

    back = to_keras_hub_backbone(encoder)
    assert_parity(encoder(batch), *keras_hub_forward(back, batch), batch["attention_mask"])
    save_keras_hub_preset(encoder, tmp_path / "out")
    reloaded = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "out"))
    assert_parity(encoder(batch), *keras_hub_forward(reloaded, batch), batch["attention_mask"])

    exact = BertEncoder(BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=1,
                                   num_attention_heads=HEADS, intermediate_size=INTERMEDIATE))
    with pytest.raises(WeightsError, match="hidden_act is 'gelu'.*tanh approximation"):
        to_keras_hub_backbone(exact)


def test_keras_hub_preset_of_another_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "module": "keras_hub.src.models.roberta.roberta_backbone", "class_name": "RobertaBackbone",
        "config": {}, "registered_name": "keras_hub>RobertaBackbone"}))
    assert detect_format(tmp_path) == "keras_hub"
    with pytest.raises(WeightsError, match="'RobertaBackbone' preset; only BertBackbone"):
        BertEncoder.from_pretrained(tmp_path)


# ------------------------------------------------------------------ Model Garden
def garden_forward(network, batch):
    out = network({"input_word_ids": batch["input_ids"], "input_type_ids": batch["token_type_ids"],
                   "input_mask": batch["attention_mask"]})
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


@pytest.fixture(scope="module")
def garden_encoder():
    network = garden_networks.BertEncoderV2(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_layers=LAYERS, num_attention_heads=HEADS,
        inner_dim=INTERMEDIATE, max_sequence_length=POSITIONS, type_vocab_size=TYPES)
    garden_forward(network, padded_batch())   # builds the variables
    values = randomize([(f"{i}/{w.name}", tuple(w.shape)) for i, w in enumerate(network.weights)], 5)
    for value, w in zip(values.values(), network.weights):
        w.assign(value)
    return network


def test_model_garden_checkpoint_matches_encoder(tmp_path, garden_encoder):
    # With an optimizer that has slots, as a training run saves it: dropped by the documented rule.
    optimizer = tf_keras.optimizers.Adam()
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in garden_encoder.trainable_variables])
    tf.train.Checkpoint(encoder=garden_encoder, optimizer=optimizer).save(str(tmp_path / "mg" / "ckpt"))
    assert detect_format(tmp_path / "mg") == "model_garden"
    encoder = BertEncoder.from_pretrained(tmp_path / "mg")
    assert (encoder.config.num_attention_heads, encoder.config.intermediate_size,
            encoder.config.max_position_embeddings, encoder.config.hidden_act) == (
                HEADS, INTERMEDIATE, POSITIONS, "gelu_tanh")
    batch = padded_batch(seed=6)
    expected = garden_forward(garden_encoder, batch)
    assert_parity(encoder(batch), *expected, batch["attention_mask"])
    assert_parity(from_model_garden_encoder(garden_encoder, BertEncoder)(batch), *expected, batch["attention_mask"])


def test_model_garden_config_override_and_unknown_tensor(tmp_path, garden_encoder):
    tf.train.Checkpoint(encoder=garden_encoder, head=tf.Variable(np.zeros((3,), np.float32))).write(
        str(tmp_path / "extra" / "ckpt"))
    with pytest.raises(WeightsError, match="not used by the model: head"):
        BertEncoder.from_pretrained(tmp_path / "extra" / "ckpt")
    wrong = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, intermediate_size=INTERMEDIATE + 1,
                       max_position_embeddings=POSITIONS, type_vocab_size=TYPES)
    tf.train.Checkpoint(encoder=garden_encoder).write(str(tmp_path / "plain" / "ckpt"))
    with pytest.raises(WeightsError) as error:
        BertEncoder.from_pretrained(tmp_path / "plain" / "ckpt", config=wrong)
    # named as the checkpoint names it, and canonically
    assert ("encoder/_transformer_layers/0/_intermediate_dense/kernel "
            "(= bert/encoder/layer_0/intermediate/dense/kernel)") in str(error.value)


def test_model_garden_functional_encoder_and_pretrainer_checkpoints(tmp_path):
    # The older functional networks.BertEncoder saves `layer_with_weights-K` keys.
    network = garden_networks.BertEncoder(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_layers=LAYERS, num_attention_heads=HEADS,
        inner_dim=INTERMEDIATE, max_sequence_length=POSITIONS, type_vocab_size=TYPES,
        dict_outputs=True)
    values = randomize([(f"{i}/{w.name}", tuple(w.shape)) for i, w in enumerate(network.weights)], 9)
    for value, w in zip(values.values(), network.weights):
        w.assign(value)
    tf.train.Checkpoint(encoder=network).write(str(tmp_path / "v1" / "ckpt"))
    batch = padded_batch(seed=10)
    assert_parity(BertEncoder.from_pretrained(tmp_path / "v1" / "ckpt")(batch),
                  *garden_forward(network, batch), batch["attention_mask"])

    # A BertPretrainerV2 checkpoint: the shared word table is stored as masked_lm/embedding_table,
    # and the masked-LM head becomes cls/predictions/*.
    from official.nlp.modeling import models as garden_models
    from bert_tf.weights import read_checkpoint

    encoder_v2 = garden_networks.BertEncoderV2(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_layers=1, num_attention_heads=HEADS,
        inner_dim=INTERMEDIATE, max_sequence_length=POSITIONS, type_vocab_size=TYPES)
    pretrainer = garden_models.BertPretrainerV2(encoder_network=encoder_v2)
    pretrainer({"input_word_ids": batch["input_ids"], "input_mask": batch["attention_mask"],
                "input_type_ids": batch["token_type_ids"],
                "masked_lm_positions": np.zeros((3, 2), np.int32)})
    tf.train.Checkpoint(**pretrainer.checkpoint_items).write(str(tmp_path / "pt" / "ckpt"))
    _, tensors = read_checkpoint(str(tmp_path / "pt" / "ckpt"))
    masked_lm = pretrainer.masked_lm
    np.testing.assert_array_equal(tensors["bert/embeddings/word_embeddings"],
                                  encoder_v2.get_embedding_table().numpy())
    np.testing.assert_array_equal(tensors["cls/predictions/transform/dense/kernel"],
                                  masked_lm.dense.kernel.numpy())
    np.testing.assert_array_equal(tensors["cls/predictions/transform/LayerNorm/gamma"],
                                  masked_lm.layer_norm.gamma.numpy())
    np.testing.assert_array_equal(tensors["cls/predictions/output_bias"], masked_lm.bias.numpy())
    assert_parity(BertEncoder.from_pretrained(tmp_path / "pt" / "ckpt")(batch),
                  *garden_forward(encoder_v2, batch), batch["attention_mask"])
