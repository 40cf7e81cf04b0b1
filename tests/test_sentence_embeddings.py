"""Sentence embeddings: BertSentenceEncoder against sentence-transformers (the real MiniLM default
on real sentences, random tiny models in every pooling mode, with and without a Dense
projection), directories both ways, the in-batch-negatives loss against sentence-transformers'
own, `bert-tf finetune embed`, `bert-tf embed`, `bert-tf search`, the SavedModel and bad input."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import bert_tf
import bert_tf.cli
from bert_tf import BertConfig, BertEncoder, BertSentenceEncoder
from bert_tf.tasks.embedding import EmbedTask, retrieval_metrics
from bert_tf.text import BertTokenizer
from tests.harness import TINY_WORDS, random_batch, run_model_test, write_tiny_init


def real_sentences(n_each):
    from bert_tf.data.corpora import rotten_tomatoes_sentences, wikipedia_sentences
    return rotten_tomatoes_sentences()[:n_each] + wikipedia_sentences()[:n_each]


def sentence_transformer(path):
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(path, device="cpu")


def assert_vectors_match(ours, theirs, atol=1e-5, min_cosine=0.99999):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= atol, np.abs(ours - theirs).max()
    cosines = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) *
                                        np.linalg.norm(theirs, axis=1))
    assert cosines.min() >= min_cosine, cosines.min()


# ---------------------------------------------------------------------- parity
@pytest.mark.slow
def test_minilm_vectors_equal_sentence_transformers_on_2000_real_sentences(minilm_dir):
    sentences = real_sentences(1000)
    assert len(sentences) == 2000
    model = BertSentenceEncoder.from_pretrained(minilm_dir)
    assert (model.pooling, model.normalize, model.projection_units) == ("mean", True, None)
    assert model.tokenizer.sequence_length == 256   # the directory's max_seq_length
    ours = model.encode(sentences, batch_size=128)
    theirs = sentence_transformer(minilm_dir).encode(sentences, batch_size=128)
    assert_vectors_match(ours, theirs)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("pooling,projection,normalize", [
    ("mean", None, True), ("cls", None, True), ("max", None, True),
    ("mean_sqrt_len", None, False), ("mean", 24, True), ("cls", 24, False)])
def test_random_tiny_model_round_trips_through_sentence_transformers(
        tmp_path, minilm_vocab, pooling, projection, normalize):
    """Written by save_sentence_transformers, loaded by sentence-transformers: the same vectors;
    read back by from_pretrained: the same model."""
    import keras
    keras.utils.set_random_seed(3)
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=48)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, initializer_range=0.2)
    model = BertSentenceEncoder(BertEncoder(config), pooling=pooling, normalize=normalize,
                                projection_units=projection)
    if projection:   # a bias far from zero, so a dropped bias would show
        kernel, bias = model.projection.get_weights()
        model.projection.set_weights([kernel, bias + 0.5])
    model.tokenizer = tokenizer
    directory = model.save_sentence_transformers(str(tmp_path / "st"))
    sentences = real_sentences(100) + ["", "   ", "naïve café", "東京"]
    ours = model.encode(sentences)
    theirs = sentence_transformer(directory).encode(sentences)
    assert_vectors_match(ours, theirs)
    again = BertSentenceEncoder.from_pretrained(directory)
    assert (again.pooling, again.normalize, again.projection_units) == (pooling, normalize,
                                                                       projection)
    assert again.tokenizer.sequence_length == 48
    np.testing.assert_allclose(again.encode(sentences), ours, atol=1e-6)


def test_model_outputs_keras_round_trip_and_texts_per_example(tmp_path):
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BertSentenceEncoder(BertEncoder(config), pooling="max", projection_units=8)
    batch = random_batch(config, batch=3, seq=12)
    outputs, _ = run_model_test(model, batch, {"embeddings": (3, 8)}, tmp_path)
    np.testing.assert_allclose(np.linalg.norm(outputs["embeddings"], axis=1), 1.0, atol=1e-6)
    # [b, k, s]: k texts per example → [b, k, d], each row the vector of its own text
    stacked = {k: np.stack([v, v[::-1]], axis=1) for k, v in batch.items()}
    grouped = np.asarray(model(stacked)["embeddings"])
    assert grouped.shape == (3, 2, 8)
    np.testing.assert_allclose(grouped[:, 0], outputs["embeddings"], atol=1e-6)
    np.testing.assert_allclose(grouped[:, 1], outputs["embeddings"][::-1], atol=1e-6)
    # packed tokens (the SavedModel's mode): pooling sees every row back at its position
    from bert_tf.layers.packed import packing_index
    packed = model.forward(batch, packing=packing_index(batch["attention_mask"]))
    np.testing.assert_allclose(np.asarray(packed["embeddings"]), outputs["embeddings"], atol=1e-5)


def test_bad_settings_are_one_clear_error():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    with pytest.raises(ValueError, match="pooling must be one of"):
        BertSentenceEncoder(BertEncoder(config), pooling="weightedmean")
    with pytest.raises(ValueError, match="projection_units"):
        BertSentenceEncoder(BertEncoder(config), projection_units=0)
    with pytest.raises(ValueError, match="no tokenizer"):
        BertSentenceEncoder(BertEncoder(config)).encode(["a"])


def test_unsupported_pipelines_and_hostile_paths_are_refused(tmp_path, minilm_dir):
    from bert_tf.weights import WeightsError
    import shutil
    st = tmp_path / "st"
    shutil.copytree(minilm_dir, st)
    modules = json.loads((st / "modules.json").read_text())
    for bad, message in [
            (modules[:1] + [{"type": "sentence_transformers.models.LayerNorm", "path": "x"}],
             "not supported"),
            ([modules[0], {**modules[1], "path": "../../etc"}], "outside")]:
        (st / "modules.json").write_text(json.dumps(bad))
        with pytest.raises(WeightsError, match=message):
            BertSentenceEncoder.from_pretrained(str(st))
    (st / "modules.json").write_text(json.dumps(modules))
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.raises(WeightsError, match="weightedmean"):
        BertSentenceEncoder.from_pretrained(str(st))


# ---------------------------------------------------------------------- loss and metrics
def test_loss_equals_sentence_transformers_multiple_negatives_ranking_loss():
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    rng = np.random.default_rng(0)
    for k in (2, 3):
        embeddings = rng.normal(size=(6, k, 10)).astype(np.float32)
        task = EmbedTask(None, ())
        ours = task.loss({"embeddings": tf.constant(embeddings)},
                         {"positive_group": tf.range(6)})["loss"]
        reference = MultipleNegativesRankingLoss(None).compute_loss_from_embeddings(
            [torch.tensor(embeddings[:, i]) for i in range(k)], None)
        np.testing.assert_allclose(float(ours), float(reference), rtol=1e-5)


def test_loss_does_not_push_a_text_away_from_its_duplicate():
    """Two examples with the same positive text: neither is the other's negative."""
    embeddings = np.zeros((3, 2, 4), np.float32)
    embeddings[:, 0] = [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    embeddings[:, 1] = [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    task = EmbedTask(None, ())
    deduplicated = float(task.loss({"embeddings": tf.constant(embeddings)},
                                   {"positive_group": tf.constant([0, 0, 2])})["loss"])
    naive = float(task.loss({"embeddings": tf.constant(embeddings)},
                            {"positive_group": tf.constant([0, 1, 2])})["loss"])
    assert deduplicated < 1e-6 < naive


def test_retrieval_metrics_by_hand():
    # 3 queries; candidates 0..2 are their positives, 3 is a distractor.
    queries = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    candidates = np.array([[1, 0.1], [1, 0], [-1, 1], [1, 1.2]], np.float32)
    scores = retrieval_metrics(np.concatenate([queries, candidates]), 3)
    # query 0's answer (cos 0.995) ranks below candidate 1 (cos 1): rank 2. Query 1's answer
    # has cos 0, below candidates 0 (0.0995), 2 (0.707) and 3 (0.768): rank 4. Query 2's answer
    # has cos 0 too, below 3 (0.996), 0 (0.774) and 1 (0.707): rank 4.
    assert scores["recall_at_1"] == 0.0
    assert scores["recall_at_10"] == 1.0
    np.testing.assert_allclose(scores["mrr_at_10"], (1 / 2 + 1 / 4 + 1 / 4) / 3)
    assert retrieval_metrics(np.concatenate([queries, candidates]), 3, ks=(4,))[
        "recall_at_4"] == 1.0
    assert retrieval_metrics(np.concatenate([queries, candidates]), 3, ks=(3,))[
        "recall_at_3"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="candidate per query"):
        retrieval_metrics(queries, 3)


# ---------------------------------------------------------------------- CLI end to end
def write_pairs(path, rows, header=("anchor", "positive")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def tiny_pairs(n, seed):
    """An anchor is a few TINY_WORDS; its positive the same words reversed plus "very"; the
    negative other words: learnable by a 2-layer, 32-wide encoder in a few dozen steps."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        words = list(rng.choice(TINY_WORDS, 4, replace=False))
        rows.append((" ".join(words), " ".join(words[::-1] + ["very"]),
                     " ".join(rng.choice(TINY_WORDS, 4))))
    return rows


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    init = write_tiny_init(root / "init", max_position_embeddings=32)
    train = write_pairs(root / "train.csv", tiny_pairs(64, 0), ("anchor", "positive", "negative"))
    dev = write_pairs(root / "dev.csv", [r[:2] for r in tiny_pairs(24, 1)])
    out = str(root / "out")
    argv = ["finetune", "embed", "--init", init, "--train", train, "--eval", dev, "--out", out,
            "--epochs", "6", "--batch-size", "16", "--max-length", "16", "--learning-rate",
            "2e-3", "--no-progress", "--strategy", "one_device"]
    assert bert_tf.cli.main(argv) == 0
    return {"root": root, "init": init, "train": train, "dev": dev, "out": out, "argv": argv}


@pytest.mark.slow
def test_finetune_embed_learns_retrieval_and_writes_a_model_dir(finetuned, capsys):
    from bert_tf.tasks.model_dir import FinetunedModel
    history = json.load(open(os.path.join(finetuned["out"], "eval_history.json")))["history"]
    first, best = history[0][1], max(h[1]["recall_at_1"] for h in history)
    task = json.load(open(os.path.join(finetuned["out"], "task.json")))
    assert task["task"] == "embed" and task["task_settings"]["pooling"] == "mean"
    assert task["metrics"]["recall_at_1"] == best
    # Before training (the encoder at --init, mean pooling) vs the best fine-tuned model.
    loaded = FinetunedModel.load(finetuned["out"])
    untrained = BertSentenceEncoder.from_pretrained(finetuned["init"])
    records = loaded.task.read(finetuned["dev"])
    from bert_tf.tasks.inference import run_inference
    before = loaded.task.score(records, run_inference(loaded.task, untrained, records))
    assert best >= before["recall_at_1"] + 0.2, (before, history)
    assert first["queries"] == 24 and first["candidates"] == 24
    # A rerun of the finished run writes nothing and reports it.
    assert bert_tf.cli.main(finetuned["argv"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metrics"] == \
        task["metrics"]


@pytest.mark.slow
def test_embed_cli_writes_unit_vectors_that_the_saved_model_serves(finetuned, tmp_path, capsys):
    texts = ["good movie", "", "   ", "bad plot " * 20000, "naïve café 東京", "the plot"]
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(texts) + "\n", encoding="utf-8")
    npy, jsonl = str(tmp_path / "v.npy"), str(tmp_path / "v.jsonl")
    assert bert_tf.cli.main(["embed", "--model", finetuned["out"], "--data", str(data),
                             "--output", npy]) == 0
    assert bert_tf.cli.main(["embed", "--model", finetuned["out"], "--data", str(data),
                             "--output", jsonl]) == 0
    vectors = np.load(npy)
    assert vectors.shape == (len(texts), 32) and vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[1], vectors[2], atol=1e-6)   # both are [CLS] [SEP]
    rows = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    assert [r["text"] for r in rows] == texts
    np.testing.assert_allclose([r["embedding"] for r in rows], vectors, atol=1e-6)
    # The SavedModel's serving_default gives the same vectors, also for invalid UTF-8 bytes.
    out = str(tmp_path / "sm")
    assert bert_tf.cli.main(["export", "saved-model", "--model", finetuned["out"], "--out",
                             out]) == 0
    import tensorflow_text  # noqa: F401
    served = tf.saved_model.load(os.path.join(out, "1")).signatures["serving_default"]
    got = served(text=tf.constant(texts))["embeddings"].numpy()
    np.testing.assert_allclose(got, vectors, atol=1e-5)
    broken = served(text=tf.constant([b"caf\xe9 \xff\xfe", b"\xc3"]))["embeddings"].numpy()
    assert np.all(np.isfinite(broken))
    np.testing.assert_allclose(np.linalg.norm(broken, axis=1), 1.0, atol=1e-5)
    # Bad input to the CLI: one clear error each.
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\ncaf\xe9\n")
    assert bert_tf.cli.main(["embed", "--model", finetuned["out"], "--data", str(bad),
                             "--output", npy]) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert bert_tf.cli.main(["embed", "--model", finetuned["out"], "--data", str(empty),
                             "--output", npy]) == 2
    assert bert_tf.cli.main(["embed", "--model", finetuned["out"], "--data", str(data),
                             "--output", str(tmp_path / "v.csv")]) == 2
    errors = capsys.readouterr().err
    # A plain encoder checkpoint embeds too: mean pooling, unit length.
    assert bert_tf.cli.main(["embed", "--model", finetuned["init"], "--data", str(data),
                             "--output", npy]) == 0
    np.testing.assert_allclose(
        np.load(npy), BertSentenceEncoder.from_pretrained(finetuned["init"]).encode(
            texts, BertTokenizer.from_vocab_file(os.path.join(finetuned["init"], "vocab.txt"),
                                                 sequence_length=32)),
        atol=1e-5)
    assert "not UTF-8" in errors and "no texts" in errors and ".npy or .jsonl" in errors


@pytest.mark.slow
def test_search_ranks_by_cosine_and_caches_vectors_beside_the_corpus(finetuned, tmp_path,
                                                                     capsys):
    from bert_tf.tasks.model_dir import FinetunedModel
    from bert_tf.search import CACHE_SUFFIX, embed_texts
    corpus = tmp_path / "corpus.txt"
    lines = ["good movie", "", "bad plot and sad", "nice film very fine", "the a was"]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["search", "--model", finetuned["out"], "--index", str(corpus), "--query",
            "good movie", "--query", "sad plot", "-k", "3", "--no-progress"]
    capsys.readouterr()
    assert bert_tf.cli.main(argv) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cache = str(corpus) + CACHE_SUFFIX
    assert os.path.isfile(cache)
    # Brute-force cosine, by hand, on the same model.
    loaded = FinetunedModel.load(finetuned["out"])
    docs = [t for t in lines if t]
    doc_vectors = embed_texts(loaded.task, loaded.model, docs)
    query_vectors = embed_texts(loaded.task, loaded.model, ["good movie", "sad plot"])
    for result, query in zip(first, query_vectors):
        expected = np.argsort(-(doc_vectors @ query), kind="stable")[:3]
        assert [r["text"] for r in result["results"]] == [docs[i] for i in expected]
        assert [r["line"] for r in result["results"]] == [lines.index(docs[i]) + 1
                                                          for i in expected]
    assert first[0]["results"][0]["text"] == "good movie"
    # Reused while corpus and model are unchanged; rebuilt when the corpus changes.
    stamp = os.stat(cache).st_mtime_ns
    assert bert_tf.cli.main(argv) == 0
    assert os.stat(cache).st_mtime_ns == stamp
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == first
    corpus.write_text("\n".join(lines + ["good movie very good"]) + "\n", encoding="utf-8")
    assert bert_tf.cli.main(argv) == 0
    assert os.stat(cache).st_mtime_ns != stamp
    # A damaged cache is rebuilt, not trusted.
    with open(cache, "wb") as f:
        f.write(b"garbage")
    assert bert_tf.cli.main(argv[:-3] + ["-k", "1", "--no-progress"]) == 0
    capsys.readouterr()
    # Bad input: one clear error each.
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert bert_tf.cli.main(["search", "--model", finetuned["out"], "--index", str(blank),
                             "--query", "x"]) == 2
    assert bert_tf.cli.main(["search", "--model", finetuned["out"], "--index", str(corpus),
                             "--query", "  "]) == 2
    assert bert_tf.cli.main(["search", "--model", finetuned["out"], "--index", str(corpus),
                             "--query", "x", "-k", "0"]) == 2
    errors = capsys.readouterr().err
    assert "corpus is empty" in errors and "is empty" in errors and "-k" in errors


@pytest.mark.slow
def test_tflite_with_tokenizer_gives_the_keras_vectors(finetuned, tmp_path):
    from bert_tf.export.tflite_runner import TFLiteTaskRunner
    from bert_tf.export.tflite_tool import convert_and_verify
    from bert_tf.tasks.model_dir import FinetunedModel
    from bert_tf.search import embed_texts
    path = str(tmp_path / "embed.tflite")
    report = convert_and_verify(finetuned["out"], path, verify_examples=40, log=lambda _: None)
    assert report["examples"] == 40 and report["cosine_min"] >= 0.99999
    assert report["tokenizer_id_mismatches"] == 0
    assert report["text_signature_label_agreement_with_ids"] == 1.0
    loaded = FinetunedModel.load(finetuned["out"])
    texts = ["good movie", "", "naïve café", "bad plot " * 50]
    lite = TFLiteTaskRunner(path, loaded.task)({"text": texts})["embeddings"]
    np.testing.assert_allclose(lite, embed_texts(loaded.task, loaded.model, texts), atol=1e-4)
