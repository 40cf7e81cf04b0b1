"""The benchmark suite: its timing and ratio logic, and one tiny run of the whole pipeline.

No timing assertions (machines differ and CI is shared); the smoke run checks that every
implementation was measured, that outputs are written and agree with each other, and that the
id check of P5 holds (bert_tf's ids equal HF BertTokenizerFast's on real sentences).
"""

import json
import os

import pytest

from bert_tf.benchmarks import results, timing
from bert_tf.benchmarks.timing import BenchmarkError


def test_alternate_rotates_the_order_and_counts_items():
    calls = []
    cases = {name: ((lambda name=name: calls.append(name)), 4) for name in "abc"}
    timings = timing.alternate(cases, warmups=1, repeats=3)
    assert calls[:3] == ["a", "b", "c"]                     # warm-ups
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(t.seconds) == 3 and t.items == 4 for t in timings.values())
    t = timing.Timings((2.0, 4.0), items=8)
    assert t.throughputs() == [4.0, 2.0] and t.latencies_ms() == [250.0, 500.0]
    with pytest.raises(BenchmarkError, match="repeats"):
        timing.alternate(cases, warmups=0, repeats=0)


def test_ratio_is_oriented_so_that_above_one_means_bert_tf_is_better():
    rows = [results.Row("P", "x", "ours", "ours", "seq/s", [10, 12, 11]),
            results.Row("P", "x", "slow", "peer", "seq/s", [1, 1, 1]),
            results.Row("P", "x", "fast", "peer", "seq/s", [5, 5.5, 4]),
            results.Row("Q", "y", "ours", "ours", "ms", [2, 2, 2], higher_is_better=False),
            results.Row("Q", "y", "peer", "peer", "ms", [8, 6, 7], higher_is_better=False),
            results.Row("Q", "z", "alone", "info", "ms", [1], higher_is_better=False)]
    by_case = {(m, c): (r, best) for m, c, _, _, r, best in results.comparisons(rows)}
    assert by_case[("P", "x")] == (pytest.approx(11 / 5), "fast")
    assert by_case[("Q", "y")] == (pytest.approx(7 / 2), "peer")
    assert ("Q", "z") not in by_case
    assert "2.20x  vs fast" in results.format_table(rows)


def test_batch_forward_flops_counts_padded_and_packed_batches():
    from bert_tf.benchmarks.flops import batch_forward_flops, encoder_flops_per_sequence
    h, layers, i = 4, 2, 8
    # Padded: every row at the longest (or the fixed) width.
    assert batch_forward_flops([3, 5], h, layers, i) == \
        2 * encoder_flops_per_sequence(h, layers, i, 5)
    assert batch_forward_flops([3, 5], h, layers, i, width=8) == \
        2 * encoder_flops_per_sequence(h, layers, i, 8)
    # Packed, by hand: n = 8 tokens, b = 2 rows, w = 5.
    first = 8 * 8 * 16 + 4 * 8 * 4 * 8 + 4 * 2 * 25 * 4            # 1024 + 1024 + 800
    last = 4 * 8 * 16 + 4 * 2 * 16 + 4 * 2 * 4 * 8 + 4 * 2 * 5 * 4   # 512 + 128 + 256 + 160
    assert batch_forward_flops([3, 5], h, layers, i, packed=True) == first + last == 3904
    assert batch_forward_flops([3, 5], h, layers, i) == 6720          # 2 rows x 2 layers x 1680


def tiny_teacher_and_student(folder, vocab) -> tuple:
    """A 4-layer tiny Rotten Tomatoes classifier and its 2-layer distilled student."""
    import shutil
    import keras
    import bert_tf.cli
    from bert_tf.config import BertConfig
    from bert_tf.data import classification, datasets
    from bert_tf.models import BertEncoder
    init = os.path.join(folder, "init")
    keras.utils.set_random_seed(0)
    BertEncoder(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4,
                           num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=128)).save_pretrained(init)
    shutil.copy(vocab, os.path.join(init, "vocab.txt"))
    train = os.path.join(folder, "train.csv")
    classification.write_classification(train, [
        (t, datasets.ROTTEN_TOMATOES_LABELS[y]) for t, y in datasets.rotten_tomatoes("train")[:32]])
    teacher, student = os.path.join(folder, "teacher"), os.path.join(folder, "student")
    common = ["--train", train, "--epochs", "1", "--batch-size", "8", "--no-progress",
              "--strategy", "one_device"]
    assert bert_tf.cli.main(["finetune", "classify", "--init", init, "--out", teacher,
                             "--max-length", "64", *common]) == 0
    assert bert_tf.cli.main(["distill", "--teacher", teacher, "--student-layers", "2",
                             "--out", student, *common]) == 0
    return teacher, student


@pytest.mark.slow
def test_tiny_p3_runs_each_quantization_fixed_and_with_length_signatures(tmp_path, minilm_vocab):
    from bert_tf.benchmarks import run_suite
    from bert_tf.benchmarks.sizes import TINY
    models = tiny_teacher_and_student(str(tmp_path / "models"), minilm_vocab)
    result = run_suite(str(tmp_path / "bench"), measures=("P3",), sizes="tiny", threads=2,
                       log=lambda line: None, p3_models=models)
    assert not result.errors
    rows = json.loads(open(result.json_path, encoding="utf-8").read())["rows"]
    # The shipped student against the teacher's float32 fixed-128.
    shipped = {r["impl"]: r for r in rows if "shipped" in r["case"]}
    assert set(shipped) == {"tflite student dynamic_int8 lengths", "tflite student full_int8 "
                            "lengths", "tflite teacher float32 fixed-128"}
    for impl in ("tflite student dynamic_int8 lengths", "tflite student full_int8 lengths"):
        extra = shipped[impl]["extra"]
        assert sum(extra["lengths_used"].values()) == TINY.p3_accuracy_sentences
        assert set(extra["lengths_used"]) <= {"16", "32", "64"}   # the student's max is 64
        assert "accuracy_delta_points" in extra
    rows = [r for r in rows if "shipped" not in r["case"]]
    ours = {r["impl"]: r for r in rows if r["role"] == "ours"}
    expected = {f"tflite {v} {layout}" for v in TINY.p3_variants
                for layout in ("fixed", "lengths")} - {"tflite float32 fixed"}
    assert set(ours) == expected
    for impl, row in ours.items():
        used = row["extra"]["lengths_used"]
        if impl.endswith("fixed"):
            assert used == {"128": TINY.p3_accuracy_sentences}
        else:   # real Rotten Tomatoes snippets are short: most run below 128 positions
            assert sum(used.values()) == TINY.p3_accuracy_sentences and "128" not in used
        # float32 with length signatures answers exactly as fixed-128 (padding is masked)
        if impl == "tflite float32 lengths":
            assert row["extra"]["accuracy_delta_points"] == 0.0
    assert all(r["impl"] == "tflite float32 fixed-128" for r in rows if r["role"] == "peer")


@pytest.mark.slow
def test_tiny_suite_runs_every_implementation_and_writes_outputs(tmp_path):
    from bert_tf.benchmarks import run_suite
    from bert_tf.benchmarks.sizes import TINY

    lines = []
    result = run_suite(str(tmp_path), measures=("P2", "P5", "P6"), sizes="tiny", threads=2,
                       log=lines.append)
    assert not result.errors
    data = json.loads(open(result.json_path, encoding="utf-8").read())
    impls = {(r["measure"], r["impl"]) for r in data["rows"]}
    for name in ("bert_tf xla", "keras_hub xla", "model_garden xla", "hf torch", "onnxruntime"):
        assert ("P2", name) in impls
    assert ("P5", "hf BertTokenizerFast") in impls
    assert {("P6", "bert_tf export"), ("P6", "sentence-transformers")} <= impls
    for row in data["rows"]:  # the matmul ceiling too: it runs in the encoders' rounds
        assert len(row["values"]) == TINY.repeats and row["min"] <= row["median"] <= row["max"]
    ceilings = [r for r in data["rows"] if r["measure"] == "P2" and r["role"] == "info"]
    assert len(ceilings) == len(TINY.p2_batches) and all(r["median"] > 0 for r in ceilings)
    p2 = [r for r in data["rows"] if r["measure"] == "P2" and r["impl"] == "bert_tf xla"]
    assert len(p2) == len(TINY.p2_batches) and all(r["extra"]["mfu"] > 0 for r in p2)
    p5 = next(r for r in data["rows"] if r["impl"] == "bert_tf tf.function")
    assert p5["extra"]["ids_identical"] == 1.0
    p6 = next(r for r in data["rows"] if r["impl"] == "bert_tf export")
    assert p6["extra"]["cosine_min"] >= 0.9999
    ratios = {(r["measure"], r["case"]): r["ratio"] for r in data["ratios"]}
    assert len(ratios) == len(TINY.p2_batches) + 2 and all(v > 0 for v in ratios.values())
    with open(result.chart_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(result.table_path, encoding="utf-8").read().strip() == result.table.strip()
    assert data["environment"]["threads"]["requested"] == 2
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


@pytest.mark.slow
def test_tiny_p1_checks_every_path_against_float32_keras(tmp_path):
    """P1's peers answer the same labels as the float32 Keras classifier: HF torch and the ONNX
    Runtime session over torch.onnx's export of the same weights, beside bert_tf's exports."""
    from bert_tf.benchmarks import run_suite
    from bert_tf.benchmarks.sizes import TINY

    result = run_suite(str(tmp_path), measures=("P1",), sizes="tiny", threads=2,
                       log=lambda *_: None)
    assert not result.errors
    data = json.loads(open(result.json_path, encoding="utf-8").read())
    p1 = {r["impl"]: r for r in data["rows"] if r["measure"] == "P1"}
    assert {"hf torch", "onnxruntime", "keras_hub xla", "bert_tf export"} <= set(p1)
    for name in ("hf torch", "onnxruntime", "bert_tf export", "bert_tf export --xla"):
        assert p1[name]["extra"]["labels_identical"] == 1.0, name
        assert p1[name]["extra"]["checked"] == TINY.p1_check_sentences
    # Model FLOP/s where the shapes are known.
    for name in ("hf torch", "onnxruntime", "keras_hub xla", "bert_tf export"):
        assert p1[name]["extra"]["gflop_s"] > 0, name
    ratios = {r["ours"]: r["best_peer"] for r in data["ratios"] if r["measure"] == "P1"}
    assert set(ratios) == {n for n in p1 if n.startswith("bert_tf")}


@pytest.mark.slow
def test_tiny_p7_fine_tunes_both_sides_and_scores_them(tmp_path):
    """P7 runs `finetune` and the PyTorch loop on the same splits (tiny encoder, 1 epoch) and
    reports seconds per epoch with each side's test metric and the gap between them."""
    from bert_tf.benchmarks import run_suite

    result = run_suite(str(tmp_path), measures=("P7",), sizes="tiny", threads=2,
                       log=lambda *_: None)
    assert not result.errors
    data = json.loads(open(result.json_path, encoding="utf-8").read())
    rows = {(r["case"], r["impl"]): r for r in data["rows"] if r["measure"] == "P7"}
    assert set(rows) == {(f"{task}, 1 epoch", side) for task in ("sentiment", "ner")
                         for side in ("bert_tf finetune", "torch dynamic padding")}
    for (case, side), row in rows.items():
        metric = "accuracy" if case.startswith("sentiment") else "f1"
        assert 0.0 <= row["extra"][metric] <= 1.0 and row["median"] > 0
        other = rows[(case, "torch dynamic padding" if side == "bert_tf finetune"
                      else "bert_tf finetune")]
        assert row["extra"][f"{metric}_vs_other_points"] == pytest.approx(
            100 * (row["extra"][metric] - other["extra"][metric]))
    sentiment = rows[("sentiment, 1 epoch", "bert_tf finetune")]["extra"]
    assert sentiment["steps"] == 1                     # 32 examples, batch 32, 1 epoch
    assert {r["ours"] for r in data["ratios"] if r["measure"] == "P7"} == {"bert_tf finetune"}


@pytest.mark.slow
def test_tiny_p4_times_the_trainer_loop_beside_the_peers():
    from bert_tf.benchmarks import p4_training
    from bert_tf.benchmarks.sizes import TINY

    rows = p4_training.run(TINY, lambda *_: None)
    assert {r.impl for r in rows} == {
        "bert_tf train_on_batch xla", "bert_tf Trainer", "bert_tf Trainer xla",
        "keras_hub train_on_batch xla", "hf torch adamw"}
    assert all(len(r.values) == TINY.repeats and min(r.values) > 0 for r in rows)


def test_trainer_step_function_trains():
    """The step P4 times is a real training step: the loss on one fixed batch goes down."""
    import tempfile

    import numpy as np

    from bert_tf.benchmarks import p4_training
    from bert_tf.benchmarks.sizes import TINY

    rng = np.random.default_rng(0)
    ids = rng.integers(1000, TINY.p4_config.vocab_size, size=(4, 16), dtype=np.int32)
    x = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)}
    labels = np.array([0, 1, 0, 1], np.int32)
    with tempfile.TemporaryDirectory() as model_dir:
        step = p4_training._trainer_step(TINY.p4_config, x, labels, False, model_dir,
                                         learning_rate=1e-3)
        losses = [step() for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_unknown_measure_is_one_clear_error(tmp_path):
    from bert_tf.benchmarks import run_suite
    with pytest.raises(BenchmarkError, match="unknown measure"):
        run_suite(str(tmp_path), measures=("P9",), sizes="tiny")
    with pytest.raises(BenchmarkError, match="unknown sizes"):
        run_suite(str(tmp_path), measures=("P2",), sizes="huge")
