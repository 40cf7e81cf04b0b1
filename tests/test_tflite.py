"""TFLite conversion on a tiny classifier with the real MiniLM vocab, run with ai-edge-litert:
float32 parity with Keras, quantized label agreement on real Rotten Tomatoes test sentences, the
tokenizer inside (custom ops via tensorflow-text's registrar) against the exact tokenizer."""

import numpy as np
import pytest

from bert_tf import BertConfig, BertEncoder
from bert_tf.data import datasets
from bert_tf.export import ExportError, convert_tflite, verify_tflite
from bert_tf.export.tflite import interpreter
from bert_tf.models import BertClassifier
from bert_tf.text import BertTokenizer

SEQUENCE_LENGTH = 32


@pytest.fixture(scope="module")
def tiny(minilm_vocab):
    import keras
    keras.utils.set_random_seed(11)
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=SEQUENCE_LENGTH)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    test = datasets.rotten_tomatoes("test")[:200]
    return {"model": BertClassifier(BertEncoder(config), num_classes=2), "tokenizer": tokenizer,
            "texts": [t for t, _ in test], "gold": [label for _, label in test]}


@pytest.mark.slow
def test_float32_with_tokenizer_matches_keras_and_exact_tokenizer(tiny, tmp_path):
    path = convert_tflite(tiny["model"], tmp_path / "m.tflite", sequence_length=SEQUENCE_LENGTH,
                          tokenizer=tiny["tokenizer"], labels=["rotten", "fresh"])
    lite = interpreter(path)
    assert set(lite.get_signature_list()) == {"serving_default", "serve_ids"}
    assert lite.get_signature_runner("serve_ids").get_input_details()["input_ids"]["shape"].tolist() \
        == [1, SEQUENCE_LENGTH]
    report = verify_tflite(path, tiny["model"], tiny["tokenizer"], tiny["texts"], tiny["gold"])
    assert report["max_abs_diff"] <= 1e-4
    assert report["label_agreement"] == 1.0 and report["accuracy_delta"] == 0.0
    # FastBertNormalize applies NFKD-style compatibility mappings BERT does not (README, Tokenizer):
    # rows may differ only where such characters occur.
    for row in report["tokenizer_mismatch_rows"]:
        assert any(ord(c) > 127 for c in tiny["texts"][row]), tiny["texts"][row]
    assert report["tokenizer_id_mismatches"] <= 2
    assert report["text_signature_label_agreement_with_ids"] >= 0.99


def test_the_text_signature_stores_no_second_copy_of_the_kernels(minilm_vocab, tmp_path):
    """With the tokenizer inside, serving_default's encoder is serve_ids' graph, so the converter
    treats both alike and each kernel is stored once. LayerNorm scales other than 1 (as in any
    trained model) are what tells: the converter folds them into the next kernels."""
    import keras
    from tensorflow.lite.tools import flatbuffer_utils
    keras.utils.set_random_seed(12)
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=SEQUENCE_LENGTH)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    model = BertClassifier(BertEncoder(config), num_classes=2)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if variable.path.endswith("gamma"):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))

    def kernels(path):   # buffers the size of a [32, 32] or [32, 64] float32 kernel
        with open(path, "rb") as f:
            lite_model = flatbuffer_utils.convert_bytearray_to_object(bytearray(f.read()))
        return sum(1 for b in lite_model.buffers
                   if b.data is not None and len(b.data) in (32 * 32 * 4, 32 * 64 * 4))
    ids_only = convert_tflite(model, tmp_path / "ids.tflite", sequence_length=SEQUENCE_LENGTH,
                              tokenizer=tokenizer, labels=["rotten", "fresh"],
                              with_tokenizer=False)
    with_text = convert_tflite(model, tmp_path / "text.tflite", sequence_length=SEQUENCE_LENGTH,
                               tokenizer=tokenizer, labels=["rotten", "fresh"])
    assert kernels(with_text) == kernels(ids_only)
    texts = [t for t, _ in datasets.rotten_tomatoes("test")[:40]]
    report = verify_tflite(with_text, model, tokenizer, texts, [0] * 40)
    assert report["max_abs_diff"] <= 1e-4 and report["label_agreement"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_models_agree_on_real_test_sentences(tiny, tmp_path, quantize):
    # int8 calibrates on real dev sentences, through the tokenizer inside the model
    calibration = [t for t, _ in datasets.rotten_tomatoes("dev")[:50]] if quantize == "int8" else None
    path = convert_tflite(tiny["model"], tmp_path / f"{quantize}.tflite", quantize=quantize,
                          sequence_length=SEQUENCE_LENGTH, tokenizer=None if quantize == "dynamic"
                          else tiny["tokenizer"], representative_data=calibration,
                          labels=["rotten", "fresh"])
    report = verify_tflite(path, tiny["model"], tiny["tokenizer"], tiny["texts"][:100],
                           tiny["gold"][:100])
    if quantize == "dynamic":  # int8 weights: about a quarter of the float32 bytes
        float_bytes = 4 * sum(int(np.prod(v.shape)) for v in tiny["model"].weights)
        assert report["file_bytes"] < 0.4 * float_bytes
    assert report["label_agreement"] >= (0.99 if quantize == "dynamic" else 0.8), report
    assert abs(report["accuracy_delta"]) <= 0.2


def test_bad_arguments_are_clear_errors(tiny, tmp_path):
    with pytest.raises(ExportError, match="quantize must be one of"):
        convert_tflite(tiny["model"], tmp_path / "x.tflite", quantize="int4")
    with pytest.raises(ExportError, match="sequence_length must be in"):
        convert_tflite(tiny["model"], tmp_path / "x.tflite", sequence_length=4096)
    with pytest.raises(ExportError, match="representative_data"):
        convert_tflite(tiny["model"], tmp_path / "x.tflite", quantize="int8",
                       sequence_length=SEQUENCE_LENGTH)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_length_signatures_share_the_weights_and_answer_as_keras(tiny, tmp_path):
    """--lengths: one file, a signature per length over one copy of the weights; each input run
    at the shortest length that holds it answers as Keras does at the full length."""
    single = convert_tflite(tiny["model"], tmp_path / "one.tflite", sequence_length=SEQUENCE_LENGTH,
                            tokenizer=tiny["tokenizer"], labels=["rotten", "fresh"])
    path = convert_tflite(tiny["model"], tmp_path / "m.tflite", sequence_length=SEQUENCE_LENGTH,
                          tokenizer=tiny["tokenizer"], labels=["rotten", "fresh"],
                          lengths=(12, 20))
    lite = interpreter(path)
    assert set(lite.get_signature_list()) == {
        "serve_ids", "serve_ids_12", "serve_ids_20", "serving_default", "serving_default_12",
        "serving_default_20", "measure"}
    assert lite.get_signature_runner("serve_ids_12").get_input_details()["input_ids"][
        "shape"].tolist() == [1, 12]
    import os
    assert os.path.getsize(path) < 1.15 * os.path.getsize(single)   # not three copies
    report = verify_tflite(path, tiny["model"], tiny["tokenizer"], tiny["texts"], tiny["gold"])
    assert report["length_signatures"] == [12, 20, SEQUENCE_LENGTH]
    assert set(report["lengths_used"]) == {12, 20, SEQUENCE_LENGTH}, report["lengths_used"]
    assert report["lengths_label_agreement"] == 1.0 and report["lengths_max_abs_diff"] <= 1e-4
    # measure: the positions a text needs (its packed pieces), capped at the full length
    measure = lite.get_signature_runner("measure")
    for text in tiny["texts"][:20]:
        pieces = tiny["tokenizer"](np.array([text]))["attention_mask"].numpy().sum()
        assert measure(text=np.array([text.encode()], dtype=object))["length"][0] == pieces


@pytest.mark.slow
def test_int8_calibrates_every_length_signature(tiny, tmp_path):
    calibration = [t for t, _ in datasets.rotten_tomatoes("dev")[:30]]
    path = convert_tflite(tiny["model"], tmp_path / "int8.tflite", quantize="int8",
                          sequence_length=SEQUENCE_LENGTH, tokenizer=tiny["tokenizer"],
                          representative_data=calibration, labels=["rotten", "fresh"],
                          lengths=(16,))
    report = verify_tflite(path, tiny["model"], tiny["tokenizer"], tiny["texts"][:100],
                           tiny["gold"][:100])
    assert report["length_signatures"] == [16, SEQUENCE_LENGTH]
    assert report["lengths_label_agreement"] >= 0.8, report
    # One int8 copy of the word table for both signatures (it is most of a BERT file): each
    # signature's calibration used to give it its own scale, hence its own copy.
    from tensorflow.lite.tools import flatbuffer_utils
    with open(path, "rb") as f:
        lite_model = flatbuffer_utils.convert_bytearray_to_object(bytearray(f.read()))
    config = tiny["model"].encoder.config
    table_bytes = config.vocab_size * config.hidden_size
    copies = [b for b in lite_model.buffers if b.data is not None and len(b.data) == table_bytes]
    assert len(copies) == 1, len(copies)


@pytest.mark.slow
def test_int8_keeps_the_residual_stream_layernorm_and_attention_float(tiny, tmp_path):
    """int8: the dense layers run int8 kernels; the residual adds, LayerNorm's ops and the
    attention products and softmax stay float (`INT8_FLOAT_OPS`; why: docs/results.md, "int8
    that keeps accuracy")."""
    calibration = [t for t, _ in datasets.rotten_tomatoes("dev")[:20]]
    path = convert_tflite(tiny["model"], tmp_path / "int8.tflite", quantize="int8",
                          sequence_length=SEQUENCE_LENGTH, tokenizer=tiny["tokenizer"],
                          representative_data=calibration, labels=["rotten", "fresh"],
                          with_tokenizer=False)
    lite = interpreter(path)
    tensors = {t["index"]: t["dtype"] for t in lite.get_tensor_details()}
    kinds = {}
    for op in lite._get_ops_details():
        dtypes = {np.dtype(tensors[i]).name for i in op["inputs"] if i >= 0}
        kinds.setdefault(op["op_name"], set()).update(dtypes)
    assert "int8" in kinds["FULLY_CONNECTED"], kinds
    # residual sums, LayerNorm, attention products and softmax
    for name in ("ADD", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "BATCH_MATMUL", "SOFTMAX"):
        assert "int8" not in kinds[name], (name, kinds[name])


def test_bad_lengths_are_clear_errors(tiny, tmp_path, capsys):
    for lengths, message in (((2,), "outside \\[3, 32\\]"), ((64,), "outside \\[3, 32\\]"),
                             (("16",), "integers")):
        with pytest.raises(ExportError, match=message):
            convert_tflite(tiny["model"], tmp_path / "x.tflite", sequence_length=SEQUENCE_LENGTH,
                           lengths=lengths)
    assert not list(tmp_path.iterdir())
    import bert_tf.cli
    assert bert_tf.cli.main(["export", "tflite", "--model", str(tmp_path / "none"), "--out",
                             str(tmp_path / "x.tflite"), "--lengths", "16,abc"]) == 2
    assert "--lengths takes comma-separated integers" in capsys.readouterr().err
