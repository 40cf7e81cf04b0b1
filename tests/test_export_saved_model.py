"""TF Serving SavedModel export on a tiny classifier with the real MiniLM vocab: signatures,
layout, atomic versions, servability (op allow-list, fresh process without bert_tf,
saved_model_cli, loopback gRPC, REST shapes), warmup records, bad inputs."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig, BertEncoder
from bert_tf.export import ExportError, export_saved_model, servability_report
from bert_tf.export import saved_model as saved_model_module
from bert_tf.export.loopback_server import LoopbackPredictionServer
from bert_tf.export.serving_client import (grpc_predict, predict_request, rest_inputs,
                                           rest_request, rest_response)
from bert_tf.export.warmup import read_warmup_requests
from bert_tf.models import BertClassifier
from bert_tf.text import BertTokenizer

SENTENCES = ["Hello, my dog is cute", "A truly awful, tedious film.", "Un café très élégant!", ""]
LABELS = ["rotten", "fresh"]


@pytest.fixture(scope="module")
def tiny(minilm_vocab, tmp_path_factory):
    import keras
    keras.utils.set_random_seed(7)
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=24)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    model = BertClassifier(BertEncoder(config), num_classes=2)
    root = tmp_path_factory.mktemp("saved_models")
    path = export_saved_model(model, root / "sentiment", tokenizer=tokenizer, labels=LABELS)
    keras_logits = np.asarray(model(tokenizer(tf.constant(SENTENCES)), training=False)["logits"])
    return {"model": model, "tokenizer": tokenizer, "root": str(root), "path": path,
            "keras_logits": keras_logits, "loaded": tf.saved_model.load(path)}


def keras_probabilities(logits):
    return np.asarray(tf.nn.softmax(logits, axis=-1))


def test_layout_signatures_assets_and_server_configs(tiny):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2
    path, root = tiny["path"], tiny["root"]
    assert path == os.path.join(root, "sentiment", "1")
    assert sorted(os.listdir(os.path.join(root, "sentiment"))) == ["1"]  # no staging left over
    assert set(tiny["loaded"].signatures) == {"serving_default", "serve_ids", "serve_examples"}
    with open(os.path.join(path, "assets", "labels.txt")) as f:
        assert f.read().split("\n")[:2] == LABELS
    with open(os.path.join(path, "assets", "vocab.txt")) as f:
        assert f.read().split("\n")[:-1] == tiny["tokenizer"].get_vocabulary()
    config = text_format.Parse(open(os.path.join(root, "models.config")).read(),
                               model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("sentiment", "/models/sentiment",
                                                                   "tensorflow")
    batching = open(os.path.join(root, "batching_parameters.txt")).read()
    assert "max_batch_size { value: 32 }" in batching


def test_serving_default_serve_ids_serve_examples_match_keras(tiny):
    loaded, logits = tiny["loaded"], tiny["keras_logits"]
    out = loaded.signatures["serving_default"](text=tf.constant(SENTENCES))
    np.testing.assert_allclose(out["probabilities"].numpy(), keras_probabilities(logits), atol=1e-6)
    assert out["label_ids"].numpy().tolist() == logits.argmax(-1).tolist()
    assert [s.decode() for s in out["labels"].numpy()] == [LABELS[i] for i in logits.argmax(-1)]
    features = {k: tf.constant(np.asarray(v)) for k, v in tiny["tokenizer"](tf.constant(SENTENCES)).items()}
    ids_out = loaded.signatures["serve_ids"](**features)
    np.testing.assert_allclose(ids_out["logits"].numpy(), logits, atol=1e-6)
    examples = saved_model_module.serialized_examples({k: v.numpy() for k, v in features.items()})
    ex_out = loaded.signatures["serve_examples"](examples=tf.constant(examples))
    np.testing.assert_allclose(ex_out["logits"].numpy(), logits, atol=1e-6)


@pytest.mark.slow
def test_fresh_process_with_only_tensorflow_and_tensorflow_text(tiny, tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["bert_tf"] = None  # bert_tf must not be importable here
        import tensorflow as tf
        import tensorflow_text  # registers the tokenizer's ops
        try:
            import bert_tf
            raise SystemExit("bert_tf was importable")
        except ImportError:
            pass
        loaded = tf.saved_model.load({tiny['path']!r})
        out = loaded.signatures["serving_default"](text=tf.constant({SENTENCES!r}))
        print(json.dumps(out["probabilities"].numpy().tolist()))
        assert not [m for m in sys.modules if m.startswith(("bert_tf", "keras"))
                    and sys.modules[m] is not None and m != "keras" and not m.startswith("keras.")]
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    probabilities = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(probabilities, keras_probabilities(tiny["keras_logits"]), atol=1e-5)


def test_op_allow_list_passes_and_catches_a_planted_op(tiny, tmp_path):
    import tensorflow_text as tf_text
    assert servability_report(tiny["path"]) == []

    class Planted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):  # a tensorflow-text op the allow-list does not name
            return tf_text.WhitespaceTokenizer().tokenize(text).to_tensor()

    tf.saved_model.save(Planted(), str(tmp_path / "planted"))
    outside = servability_report(str(tmp_path / "planted"))
    assert outside and all("Whitespace" in op for op in outside), outside


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(tiny):
    # saved_model_cli loads the graph: tensorflow_text must be imported before its main() runs.
    script = ("import sys, tensorflow_text\n"
              "from tensorflow.python.tools import saved_model_cli\n"
              f"sys.argv = ['saved_model_cli', 'show', '--dir', {tiny['path']!r}, '--all']\n"
              "saved_model_cli.main()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("signature_def['serving_default']", "signature_def['serve_ids']",
                 "signature_def['serve_examples']", "outputs['probabilities']"):
        assert name in proc.stdout


def test_warmup_records_parse_as_prediction_logs(tiny):
    logs = read_warmup_requests(os.path.join(tiny["path"], "assets.extra",
                                             "tf_serving_warmup_requests"))
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default", "serve_ids", "serve_examples"]
    for log in logs:  # each replays against the model as TF Serving would
        request = log.predict_log.request
        assert request.model_spec.name == "sentiment"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        out = tiny["loaded"].signatures[request.model_spec.signature_name](**inputs)
        assert out["logits"].shape[0] == 2


def test_grpc_loopback_round_trip_equals_keras(tiny):
    with LoopbackPredictionServer(tiny["path"], model_name="sentiment") as server:
        assert server.address.startswith("127.0.0.1:")
        out = grpc_predict(server.address, predict_request("sentiment", {"text": SENTENCES}))
        features = {k: np.asarray(v) for k, v in tiny["tokenizer"](tf.constant(SENTENCES)).items()}
        ids_out = grpc_predict(server.address, predict_request("sentiment", features, "serve_ids"))
        import grpc
        with pytest.raises(grpc.RpcError) as error:
            grpc_predict(server.address, predict_request("sentiment", {"text": np.array([1, 2])}))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    np.testing.assert_allclose(out["probabilities"], keras_probabilities(tiny["keras_logits"]),
                               atol=1e-6)
    assert [s.decode() for s in out["labels"]] == [LABELS[i] for i in tiny["keras_logits"].argmax(-1)]
    np.testing.assert_allclose(ids_out["logits"], tiny["keras_logits"], atol=1e-6)


def test_rest_json_row_and_columnar_formats(tiny):
    signature = tiny["loaded"].signatures["serving_default"]
    row = rest_request({"text": SENTENCES[:2]})
    assert row == {"signature_name": "serving_default",
                   "instances": [{"text": SENTENCES[0]}, {"text": SENTENCES[1]}]}
    columnar = rest_request({"text": SENTENCES[:2]}, columnar=True)
    assert columnar["inputs"] == {"text": SENTENCES[:2]}
    for body, is_columnar in ((row, False), (columnar, True), ({"instances": SENTENCES[:2]}, False)):
        inputs = rest_inputs(json.loads(json.dumps(body)), ["text"])
        response = json.loads(json.dumps(rest_response(
            {k: v.numpy() for k, v in signature(text=tf.constant(inputs["text"].astype(str))).items()},
            is_columnar)))
        if is_columnar:
            assert set(response) == {"outputs"} and len(response["outputs"]["probabilities"]) == 2
        else:
            assert len(response["predictions"]) == 2
            assert response["predictions"][0]["labels"] in LABELS
            assert len(response["predictions"][0]["probabilities"]) == 2
    with pytest.raises(ValueError, match="exactly one of"):
        rest_inputs({"instances": [], "inputs": {}}, ["text"])


def test_bad_inputs_give_clear_errors_or_defined_results(tiny):
    signature = tiny["loaded"].signatures["serving_default"]
    empty = signature(text=tf.constant([], tf.string))  # empty batch: empty outputs
    assert empty["probabilities"].shape == (0, 2) and empty["labels"].shape == (0,)
    blank = signature(text=tf.constant([""]))  # empty string: scored as "[CLS] [SEP]"
    np.testing.assert_allclose(blank["probabilities"].numpy(),
                               keras_probabilities(tiny["keras_logits"][3:4]), atol=1e-6)
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(text=tf.constant([1, 2]))  # wrong dtype
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                       match="1-D batch of strings"):
        signature(text=tf.constant([["a", "b"]]))  # wrong rank
    ids = tiny["loaded"].signatures["serve_ids"]
    good = tf.ones([1, 5], tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="attention_mask must have the shape"):
        ids(input_ids=good, token_type_ids=good, attention_mask=tf.ones([1, 4], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"input_ids: ids must be in \[0, 30522\)"):
        ids(input_ids=good * 999999, token_type_ids=good * 0, attention_mask=good)


def test_attended_length_cuts_only_what_no_row_attends_to():
    from bert_tf.export.trimming import attended_length, pad_positions
    mask = tf.constant([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                        [0, 0, 1, 1, 0, 1, 0, 0, 0, 0]])     # left padding and a hole
    assert int(attended_length(mask, bucket=1)) == 6
    assert int(attended_length(mask, bucket=4)) == 8
    assert int(attended_length(mask, bucket=16)) == 10     # never past the input
    assert int(attended_length(tf.zeros([2, 10], tf.int32), bucket=4)) == 1
    padded = pad_positions(tf.ones([2, 3, 5]), 7)
    assert padded.shape == (2, 7, 5) and float(tf.reduce_sum(padded)) == 30.0


def test_auto_bucket_is_exact_without_xla_and_eight_with_it():
    from bert_tf.export.trimming import resolve_bucket
    assert resolve_bucket("auto", jit_compile=False) == 1
    assert resolve_bucket("auto", jit_compile=True) == 8
    assert resolve_bucket(0, jit_compile=True) is None and resolve_bucket(None, False) is None
    assert resolve_bucket(16, jit_compile=False) == 16
    for bad in (-1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="trim_bucket must be"):
            resolve_bucket(bad, jit_compile=False)


@pytest.mark.slow
@pytest.mark.parametrize("trim_bucket,group_size,jit_compile,pack",
                         [(0, 0, False, "auto"), (16, 0, False, "auto"), (4, 2, True, "auto"),
                          (1, 8, False, False), (4, 2, True, False)])
def test_trimmed_and_xla_exports_equal_the_full_length_model(tiny, tmp_path, trim_bucket,
                                                             group_size, jit_compile, pack):
    """The default export (the `tiny` fixture) cuts the batch to its exact longest row and runs
    the classifier on packed tokens; untrimmed, bucketed, XLA-compiled (token counts in buckets of
    64) and unpacked exports (rows sorted by length, groups cut to their longest row) give the
    same outputs, including for ids with left padding (position 0 masked) and holes."""
    model, tokenizer = tiny["model"], tiny["tokenizer"]
    path = export_saved_model(model, tmp_path / "m", tokenizer=tokenizer, labels=LABELS,
                              trim_bucket=trim_bucket, group_size=group_size,
                              jit_compile=jit_compile, pack=pack)
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](text=tf.constant(SENTENCES))
    np.testing.assert_allclose(out["probabilities"].numpy(),
                               keras_probabilities(tiny["keras_logits"]), atol=1e-6)
    rng = np.random.default_rng(3)
    ids = rng.integers(1000, 2000, size=[5, 24]).astype(np.int32)
    mask = np.zeros([5, 24], np.int32)
    mask[0, :5], mask[1, 7:11], mask[2, [0, 2, 9]] = 1, 1, 1     # right, left padding, holes
    mask[3, :], mask[4, :2] = 1, 1                               # full length; groups of 2 + 1
    features = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
    expected = np.asarray(model(features, training=False)["logits"])
    for served in (loaded.signatures["serve_ids"], tiny["loaded"].signatures["serve_ids"]):
        got = served(**{k: tf.constant(v) for k, v in features.items()})["logits"].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_every_task_model_is_packed_by_default(tiny):
    from bert_tf.layers.packed import packing_index
    from bert_tf.export.serving_module import BertServingModule
    from bert_tf.models import BertTokenClassifier
    from bert_tf.tasks.registry import default_task
    model, tokenizer = tiny["model"], tiny["tokenizer"]
    task = default_task(model, tokenizer, labels=LABELS)
    assert BertServingModule(model, task)._pack is True
    assert BertServingModule(model, task, pack=False)._pack is False
    tagger = BertTokenClassifier(model.encoder, num_labels=3)
    assert BertServingModule(tagger, None)._pack is True
    with pytest.raises(ValueError, match="pack must be True, False or 'auto'"):
        BertServingModule(tagger, None, pack="yes")
    # the index: attended positions plus each row's position 0, padded with index 0 to a bucket
    mask = tf.constant([[1, 1, 0, 0], [0, 1, 0, 1]])
    positions, inverse = packing_index(mask, token_bucket=4)
    assert positions.numpy().tolist() == [0, 1, 4, 5, 7, 0, 0, 0]
    assert inverse.numpy().tolist() == [1, 2, 0, 0, 3, 4, 0, 5]


def test_versions_increment_and_interrupted_export_leaves_nothing(tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny["model"], tiny["tokenizer"]
    target = tmp_path / "m"
    os.makedirs(target / "3")
    assert saved_model_module.next_version(str(target)) == 4
    with pytest.raises(ExportError, match="already exists"):
        export_saved_model(model, target, tokenizer=tokenizer, labels=LABELS, version=3)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(saved_model_module, "write_warmup_requests", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, target, tokenizer=tokenizer, labels=LABELS)
    assert sorted(os.listdir(target)) == ["3"]  # no version 4, no staging dir
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


@pytest.mark.slow
def test_token_classifier_and_span_labeler_serve_entities_and_answers(tiny, tmp_path):
    from bert_tf.models import BertSpanLabeler, BertTokenClassifier
    from tests.harness import random_batch
    from tests.harness_export import run_export_test
    encoder = tiny["model"].encoder
    tokenizer = tiny["tokenizer"]
    tags = ["O", "B-person", "I-person", "B-geo-loc", "I-geo-loc"]
    tagger = BertTokenClassifier(encoder, num_labels=len(tags))
    path, loaded = run_export_test(tagger, random_batch(encoder.config, seq=10), tmp_path / "ner",
                                   tokenizer=tokenizer, labels=tags)
    text = ["Barack Obama visited Paris", ""]
    out = loaded.signatures["serving_default"](text=tf.constant(text))
    count = out["entity_count"].numpy()
    assert count[1] == 0 and out["entity_texts"].shape[0] == 2
    for i in range(count[0]):  # every span is a real slice of the input, of a known type
        start, end = out["entity_starts"].numpy()[0, i], out["entity_ends"].numpy()[0, i]
        assert out["entity_texts"].numpy()[0, i] == text[0].encode()[start:end]
        assert out["entity_labels"].numpy()[0, i].decode() in ("person", "geo-loc")
    qa = BertSpanLabeler(encoder)
    _, loaded = run_export_test(qa, random_batch(encoder.config, seq=10), tmp_path / "qa",
                                tokenizer=tokenizer)
    context = "BERT was published by Google in 2018."
    out = loaded.signatures["serving_default"](question=tf.constant(["Who published BERT?"]),
                                               context=tf.constant([context]))
    start, end = out["answer_start"].numpy()[0], out["answer_end"].numpy()[0]
    assert 0 <= start < end <= len(context.encode())
    assert out["answer"].numpy()[0] == context.encode()[start:end]
