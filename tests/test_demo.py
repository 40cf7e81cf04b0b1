"""The main job (`bert-tf demo`) on the embedded default, checked against transformers."""

import subprocess
import sys

import numpy as np
import torch
import transformers

from bert_tf.demo import sentence_similarities


def test_sentence_embeddings_match_transformers_mean_pooling(minilm_dir):
    sentences = ["Hello, my dog is cute", "Un café très élégant à Paris!"]
    result = sentence_similarities(sentences, sequence_length=32)
    assert result["input_ids"][0, :8].tolist() == [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]
    hf_tokenizer = transformers.BertTokenizerFast(f"{minilm_dir}/vocab.txt", do_lower_case=True)
    batch = hf_tokenizer(sentences, padding="max_length", max_length=32, return_tensors="pt")
    assert batch["input_ids"].numpy().tolist() == result["input_ids"].tolist()
    model = transformers.BertModel.from_pretrained(minilm_dir).eval()
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    reference = (hidden * mask).sum(1) / mask.sum(1)
    reference = torch.nn.functional.normalize(reference, dim=-1).numpy()
    np.testing.assert_allclose(result["embeddings"], reference, atol=1e-5)
    np.testing.assert_allclose(result["similarities"], reference @ reference.T, atol=1e-5)


def test_demo_cli_runs_and_reports(minilm_dir):
    proc = subprocess.run([sys.executable, "-m", "bert_tf.cli", "demo", "--sentence", "A fine film.",
                           "--sentence", "A great movie."], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Cosine similarities" in proc.stdout and "A great movie." in proc.stdout


def test_demo_cli_bad_model_dir_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bert_tf.cli", "demo", "--model", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "has no vocab.txt" in proc.stderr and "Traceback" not in proc.stderr
