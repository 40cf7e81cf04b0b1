"""`bert-tf convert`: HF → google → KerasHub → HF keeps the encoder's outputs exactly."""

import subprocess
import sys

import numpy as np
import torch
import transformers

import bert_tf
from bert_tf.models.pretrained import convert_checkpoint
from bert_tf.weights import WeightsError
from tests.harness import random_batch


def test_conversion_chain_keeps_outputs(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=24, hidden_act="gelu_new")
    transformers.BertModel(config).save_pretrained(str(tmp_path / "hf"))
    (tmp_path / "hf" / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(50)) + "\n")
    reference = bert_tf.BertEncoder.from_pretrained(str(tmp_path / "hf"))
    batch = random_batch(reference.config, batch=2, seq=9)
    expected = np.asarray(reference(batch)["sequence_output"])
    google = convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "google"), "google")
    hub = convert_checkpoint(google, str(tmp_path / "hub"), "keras_hub")
    back = convert_checkpoint(hub, str(tmp_path / "hf2"), "huggingface")
    assert (tmp_path / "google" / "vocab.txt").is_file() and (tmp_path / "hf2" / "vocab.txt").is_file()
    again = bert_tf.BertEncoder.from_pretrained(back)
    np.testing.assert_allclose(np.asarray(again(batch)["sequence_output"]), expected, atol=1e-6)


def test_convert_errors_are_clear(tmp_path):
    try:
        convert_checkpoint(str(tmp_path), str(tmp_path / "out"), "onnx")
    except WeightsError as e:
        assert "Unknown output format" in str(e)
    else:
        raise AssertionError("expected WeightsError")
    proc = subprocess.run([sys.executable, "-m", "bert_tf.cli", "convert", "--input",
                           str(tmp_path / "nothing"), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "No checkpoint at" in proc.stderr and "Traceback" not in proc.stderr
