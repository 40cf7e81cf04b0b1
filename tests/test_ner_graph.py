"""NER's one inference path (bert_tf.tasks.ner_graph + NerTask): windows against run_squad's
doc-stride rule and Hugging Face's overflowing windows, word tags against a pure-Python max-context
reference on random logits, entity character offsets on non-ASCII text, tf.function / SavedModel /
empty batches."""

import json
import os
import re
import string
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data.squad_features import _doc_spans, _is_max_context
from bert_tf.tasks import IGNORE_INDEX, NerTask
from bert_tf.tasks import ner_graph
from bert_tf.tasks.base import word_pieces
from bert_tf.tasks.ner import TaggedSentences
from bert_tf.text import BertTokenizer

SEQ = 10  # windows of 8 pieces
LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC")  # "MISC" is not IOB2: outside
WORDS = ["john", "lives", "in", "new", "york", "paris", "the", "city"]
# Words of one piece, of several, with punctuation split off by BERT's pre-tokenizer, non-ASCII
# (accents stripped: "münchen" -> m ##u ...), unknown characters, and words with no piece at all.
POOL = (WORDS + ["John", "Yorkshire", "zzz", "@jo", "x.y", "München", "Zoë", "☃", "東京", "ßa",
                 "\x00", "\u0301", "a\u00a0b", "é"])


def make_tokenizer(sequence_length):
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list(string.ascii_lowercase)
             + ["##" + c for c in string.ascii_lowercase] + list(string.punctuation) + ["東"])
    return BertTokenizer(vocab, lowercase=True, sequence_length=sequence_length)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(SEQ)


def random_texts(rng, n, most_words=14):
    """Texts of POOL words joined by runs of mixed ASCII whitespace (with edge whitespace)."""
    texts = []
    for _ in range(n):
        words = rng.choice(POOL, rng.integers(0, most_words + 1)).tolist()
        gaps = ["".join(rng.choice(list(" \t\n\r\v\f"), rng.integers(1, 3))) for _ in words]
        texts.append(" " * int(rng.integers(0, 2)) + "".join(w + g for w, g in zip(words, gaps)))
    return texts


def reference_windows(tokenizer, text, stride):
    """Python reference: words by the split rule, pieces per word, run_squad's spans and
    max-context rule. -> (input_ids rows, first_word rows, max_context rows)."""
    words = ner_graph.split_words(text)
    pieces = word_pieces(tokenizer, words) if words else []
    flat = [(p, w, i == 0) for w, word in enumerate(pieces) for i, p in enumerate(word)]
    room = tokenizer.sequence_length - 2
    spans = _doc_spans(len(flat), room, stride)
    ids, first, best = [], [], []
    for k, (start, length) in enumerate(spans):
        chunk = flat[start:start + length]
        pad = room - length
        ids.append([tokenizer.cls_id] + [p for p, _, _ in chunk] + [tokenizer.sep_id]
                   + [tokenizer.pad_id] * pad)
        first.append([-1] + [w if f else -1 for _, w, f in chunk] + [-1] * (pad + 1))
        best.append([False] + [f and _is_max_context(spans, k, start + j)
                               for j, (_, _, f) in enumerate(chunk)] + [False] * (pad + 1))
    return ids, first, best


def reference_decode(tokenizer, text, stride, logits):
    """Python reference of decode_entities for one text whose windows have `logits` [k, S, L]:
    the tag of each word at its first piece in its max-context window; IOB2 entities with
    character offsets from re.finditer."""
    words = list(re.finditer(r"[^ \t\n\r\v\f]+", text))
    pieces = word_pieces(tokenizer, [m.group() for m in words]) if words else []
    spans = _doc_spans(sum(map(len, pieces)), tokenizer.sequence_length - 2, stride)
    tags, position = [], 0
    for word in pieces:
        tag = "O"
        if word:
            (k, (start, _)), = [(k, s) for k, s in enumerate(spans)
                                if _is_max_context(spans, k, position)]
            tag = LABELS[int(np.argmax(logits[k, position - start + 1]))]
        tags.append(tag)
        position += len(word)
    entities, previous = [], None
    for match, tag in zip(words, tags):
        prefix, _, kind = tag.partition("-")
        kind = kind if prefix in ("B", "I") and kind else None
        if kind and (prefix == "B" or previous != kind):
            entities.append([kind, match.start(), match.end()])
        elif kind:
            entities[-1][2] = match.end()
        previous = kind
    return tags, [(kind, text[s:e], s, e) for kind, s, e in entities]


def as_str(array):
    return [[v.decode() for v in row] for row in np.asarray(array)]


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_windows_follow_the_doc_stride_rule_and_are_the_training_windows(tokenizer, stride):
    texts = random_texts(np.random.default_rng(stride), 12) + ["", " \t ", "\x00", "john"]
    windows = ner_graph.ner_windows(tokenizer, tf.constant(texts), stride)
    task = NerTask(tokenizer, LABELS, stride=stride)
    tags = [["B-PER" if i % 3 == 0 else "O" for i, _ in enumerate(ner_graph.split_words(t))]
            for t in texts]
    features = task.encode(TaggedSentences([(ner_graph.split_words(t), g)
                                            for t, g in zip(texts, tags)]), training=True)
    row_index = windows["row_index"].numpy()
    assert np.all(np.diff(row_index) >= 0) and set(row_index) == set(range(len(texts)))
    assert len(set(row_index)) < len(row_index)  # some texts need several windows
    for i, text in enumerate(texts):
        rows = row_index == i
        ids, first, best = reference_windows(tokenizer, text, stride)
        np.testing.assert_array_equal(windows["input_ids"].numpy()[rows], ids)
        np.testing.assert_array_equal(windows["attention_mask"].numpy()[rows],
                                      np.array(ids) != tokenizer.pad_id)
        np.testing.assert_array_equal(windows["first_word"].numpy()[rows], first)
        np.testing.assert_array_equal(windows["max_context"].numpy()[rows], best)
        words = list(re.finditer(rb"[^ \t\n\r\v\f]+", text.encode()))
        assert windows["word_count"].numpy()[i] == len(words)
        np.testing.assert_array_equal(windows["word_starts"].numpy()[i, :len(words)],
                                      [m.start() for m in words])
        np.testing.assert_array_equal(windows["word_ends"].numpy()[i, :len(words)],
                                      [m.end() for m in words])
        assert (windows["word_starts"].numpy()[i, len(words):] == -1).all()
        # Training: the same windows (text = tokens joined by " "), gold at every first piece.
        train_rows = features.extras["row_index"] == i
        np.testing.assert_array_equal(features.inputs["input_ids"][train_rows], ids)
        expected = [[IGNORE_INDEX if w < 0 else LABELS.index(tags[i][w]) for w in row]
                    for row in first]
        np.testing.assert_array_equal(features.targets["labels"][train_rows], expected)
    assert not windows["token_type_ids"].numpy().any()


def test_one_window_text_tags_each_word_at_its_first_piece(tokenizer):
    text = "John lives in\tYork  Zoë \x00 ☃"  # 8 pieces: one window
    windows = ner_graph.ner_windows(tokenizer, tf.constant([text]), 3)
    assert windows["input_ids"].shape[0] == 1
    logits = np.random.default_rng(0).normal(size=[1, SEQ, len(LABELS)]).astype(np.float32)
    decoded = ner_graph.decode_entities(logits, windows, tf.constant([text]), LABELS)
    # Single-window rule: word w's first piece sits at 1 + (pieces of the words before it).
    pieces = word_pieces(tokenizer, ner_graph.split_words(text))
    positions = 1 + np.cumsum([0] + [len(p) for p in pieces[:-1]])
    expected = [LABELS[int(np.argmax(logits[0, p]))] if piece else "O"
                for p, piece in zip(positions, pieces)]
    assert [len(p) for p in pieces][-2] == 0  # the "\x00" word has no piece: "O"
    assert as_str(decoded["word_tags"])[0] == expected


@pytest.mark.parametrize("seq, stride, most_words", [(SEQ, 2, 30), (SEQ, 5, 30), (200, 150, 150)])
def test_long_texts_take_each_tag_from_the_max_context_window(seq, stride, most_words):
    """With 200 positions and a short last window, the 0.01 * length term decides some pieces
    (a piece with one more piece of context in the short last window stays in the long one)."""
    tokenizer = make_tokenizer(seq)
    rng = np.random.default_rng(seq + stride)
    texts = random_texts(rng, 16, most_words=most_words) + ["", "München John"]
    windows = ner_graph.ner_windows(tokenizer, tf.constant(texts), stride)
    row_index = windows["row_index"].numpy()
    assert np.bincount(row_index).max() >= (2 if seq > SEQ else 4)
    logits = rng.normal(size=[len(row_index), seq, len(LABELS)]).astype(np.float32)
    decoded = {k: v.numpy() for k, v in
               ner_graph.decode_entities(logits, windows, tf.constant(texts), LABELS).items()}
    most = decoded["entity_labels"].shape[1]
    assert most == decoded["entity_count"].max() > 0
    for i, text in enumerate(texts):
        tags, entities = reference_decode(tokenizer, text, stride, logits[row_index == i])
        padding = [""] * (decoded["word_tags"].shape[1] - decoded["word_count"][i])
        assert as_str(decoded["word_tags"][i:i + 1])[0] == tags + padding
        count = decoded["entity_count"][i]
        got = [(decoded["entity_labels"][i, e].decode(), decoded["entity_texts"][i, e].decode(),
                decoded["entity_starts"][i, e], decoded["entity_ends"][i, e]) for e in range(count)]
        assert got == entities
        assert all(text[s:e] == t for _, t, s, e in got)
        assert (decoded["entity_starts"][i, count:] == -1).all()
        assert (decoded["entity_labels"][i, count:] == b"").all()


def test_entities_on_non_ascii_text_slice_by_characters(tokenizer):
    text = "Zoë  Ångström lives\tin 東京 ☃ ; München\u00a0Süd é"
    words = ner_graph.split_words(text)
    assert words == ["Zoë", "Ångström", "lives", "in", "東京", "☃", ";", "München\u00a0Süd", "é"]
    wanted = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "MISC", "I-LOC", "B-PER"]
    task = NerTask(tokenizer, LABELS, stride=3)
    windows = ner_graph.ner_windows(tokenizer, tf.constant([text]), 3)
    # Logits that put each word's wanted tag on its first piece, in every window.
    first = windows["first_word"].numpy()
    logits = np.where(first[..., None] >= 0,
                      np.eye(len(LABELS))[[LABELS.index(wanted[w]) for w in first.ravel()]]
                      .reshape(first.shape + (len(LABELS),)), 0).astype(np.float32)
    decoded = task.decode({"logits": logits}, windows, {"text": tf.constant([text])})
    assert as_str(decoded["word_tags"])[0] == wanted
    got = [(decoded["entity_labels"][0, e].numpy().decode(), int(decoded["entity_starts"][0, e]),
            int(decoded["entity_ends"][0, e]), decoded["entity_texts"][0, e].numpy().decode())
           for e in range(int(decoded["entity_count"][0]))]
    # "MISC" is outside, so the I-LOC after it opens a new entity.
    assert got == [("PER", 0, 13, "Zoë  Ångström"), ("LOC", 23, 27, "東京 ☃"),
                   ("LOC", 30, 41, "München\u00a0Süd"), ("PER", 42, 43, "é")]
    assert all(text[s:e] == t for _, s, e, t in got)


def fake_model(inputs):
    """Deterministic logits from the ids, so decoding has something to decode."""
    return {"logits": 4.0 * tf.one_hot(inputs["input_ids"] % len(LABELS), len(LABELS))}


class NerServer(tf.Module):
    def __init__(self, task):
        super().__init__()
        self.task = task
        self.tokenizer = task.tokenizer  # tracked, so its tables are saved

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        inputs, state = self.task.serving_features({"text": text})
        return self.task.decode(fake_model(inputs), state, {"text": text})


@pytest.mark.slow
def test_serving_path_traces_saves_loads_and_takes_empty_batches(tokenizer, tmp_path):
    task = NerTask(tokenizer, LABELS, stride=3)
    texts = ["John lives in New York", "", "Zoë   München ☃ 東京 john in york paris the city zzz"]
    texts += task.warmup_texts()["text"]
    inputs, state = task.serving_features({"text": tf.constant(texts)})
    eager = task.decode(fake_model(inputs), state, {"text": tf.constant(texts)})
    assert max(np.bincount(state["row_index"].numpy())) > 1  # a warmup text spans several windows
    tf.saved_model.save(NerServer(task), str(tmp_path / "ner"))
    loaded = tf.saved_model.load(str(tmp_path / "ner"))
    for batch in (texts, [], [""], ["", " \t"]):
        served = loaded(tf.constant(batch, tf.string))
        reference = task.decode(*_served_inputs(task, batch))
        assert set(served) == set(reference)
        for name in reference:
            assert served[name].shape[0] == len(batch)
            np.testing.assert_array_equal(served[name].numpy(), reference[name].numpy())
    served = loaded(tf.constant(texts))
    for name in eager:
        np.testing.assert_array_equal(served[name].numpy(), eager[name].numpy())
    empty = loaded(tf.constant(["", ""]))
    assert empty["word_tags"].shape == (2, 0) and empty["entity_texts"].shape == (2, 0)
    np.testing.assert_array_equal(empty["entity_count"].numpy(), [0, 0])
    # A fresh process with only tensorflow + tensorflow_text loads and runs it.
    script = ("import json, sys, tensorflow as tf, tensorflow_text\n"
              "assert 'bert_tf' not in sys.modules\n"
              "out = tf.saved_model.load(sys.argv[1])(tf.constant(json.loads(sys.argv[2])))\n"
              "print(json.dumps({k: [[x.decode() for x in row] for row in v.numpy().tolist()]"
              " if v.dtype == tf.string else v.numpy().tolist() for k, v in out.items()}))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ner"), json.dumps(texts)],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                          env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(fresh) == set(eager)
    for name, value in fresh.items():
        expected = eager[name].numpy()
        expected = as_str(expected) if expected.dtype == object else expected
        np.testing.assert_array_equal(value, expected)


def _served_inputs(task, batch):
    text = tf.constant(batch, tf.string)
    inputs, state = task.serving_features({"text": text})
    return fake_model(inputs), state, {"text": text}


def test_task_decodes_its_own_training_targets_back_to_the_gold_tags(tokenizer):
    sentences = [(["John", "Smith", "lives", "in", "New", "York", "Yorkshire", "zzz", "city", "Zoë",
                   "München", "Paris", "the", "john", "john"],
                  ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O", "O", "B-PER",
                   "B-LOC", "I-LOC", "O", "B-PER", "B-PER"]),
                 (["\x00", "paris"], ["O", "B-LOC"]), (["x.y"], ["O"])]
    task = NerTask(tokenizer, LABELS, stride=2)
    records = TaggedSentences(sentences, "mem")
    features = task.encode(records, training=True)
    assert len(features) > len(sentences)
    # Perfect logits on every labeled piece of every window.
    logits = np.eye(len(LABELS), dtype=np.float32)[np.maximum(features.targets["labels"], 0)]
    texts = task.record_texts(records)
    state = {k: tf.constant(v) for k, v in features.extras.items()}
    _, served_state = task.serving_features({"text": tf.constant(texts["text"])})
    for name, value in served_state.items():
        if name in state:
            np.testing.assert_array_equal(value.numpy(), state[name].numpy())
    decoded = task.decode({"logits": logits}, served_state, {"text": tf.constant(texts["text"])})
    decoded = {k: v.numpy() for k, v in decoded.items()}
    assert task.score(records, decoded)["f1"] == 1.0
    rows = task.rows(records, decoded)
    assert rows[0]["tags"] == sentences[0][1]
    assert rows[0]["entities"][:2] == [
        {"label": "PER", "text": "John Smith", "start": 0, "end": 10},
        {"label": "LOC", "text": "New York Yorkshire", "start": 20, "end": 38}]
    for row, text in zip(rows, texts["text"]):
        assert all(text[e["start"]:e["end"]] == e["text"] for e in row["entities"])
    assert rows[1] == {"tokens": ["\x00", "paris"], "tags": ["O", "B-LOC"],
                       "entities": [{"label": "LOC", "text": "paris", "start": 2, "end": 7}]}
    # Scoring reads the decoded tags, not the gold: a wrong tag costs F1.
    decoded["word_tags"][0, 0] = b"O"
    assert task.score(records, decoded)["f1"] < 1.0
    assert task.settings() == {"scheme": "iob2", "stride": 2}


def test_records_use_the_graph_word_rule(tokenizer):
    task = NerTask(tokenizer, LABELS)
    records = task.records_from_texts(["john  in\tnew\x0byork\x0c", " \t ", "a\u00a0b\u2003c"])
    assert [tokens for tokens, _ in records.sentences] == [["john", "in", "new", "york"],
                                                           ["a\u00a0b\u2003c"]]
    assert task.record_texts(records)["text"] == ["john in new york", "a\u00a0b\u2003c"]
    with pytest.raises(ValueError, match=r"f\.conll: sentence 2: token 'New York' is empty or "
                                         r"contains whitespace"):
        task.record_texts(TaggedSentences([(["a"], ["O"]), (["New York"], ["B-LOC"])], "f.conll"))
    with pytest.raises(ValueError, match=r"f\.conll: sentence 1: 2 tokens but 1 tags"):
        task.encode(TaggedSentences([(["a", "b"], ["O"])], "f.conll"))
    assert task.stride == (SEQ - 2) // 2
    long_text = task.warmup_texts()["text"][-1]
    assert sum(map(len, word_pieces(tokenizer, long_text.split()))) > SEQ - 2


@pytest.mark.parametrize("stride, message", [
    (0, r"between 1 and sequence_length - 2 = 8 word-pieces .*got 0"),
    (9, r"between 1 and sequence_length - 2 = 8 word-pieces .*got 9"),
    (2.5, r"stride must be an integer number of word-pieces, got 2\.5"),
    (True, r"stride must be an integer number of word-pieces, got True")])
def test_bad_stride_is_a_clear_error(tokenizer, stride, message):
    with pytest.raises(ValueError, match=message):
        NerTask(tokenizer, LABELS, stride=stride)
    with pytest.raises(ValueError, match=message):
        ner_graph.ner_windows(tokenizer, tf.constant(["a"]), stride)


def test_windows_equal_hugging_face_overflowing_windows(minilm_vocab):
    """HF's `stride` is the overlap between windows: ours (the step) is window size - overlap.
    Labels sit on each word's first piece (one that starts the word in the whole text)."""
    transformers = pytest.importorskip("transformers")
    from bert_tf.data import datasets
    hf = transformers.BertTokenizerFast(minilm_vocab, do_lower_case=True)
    sentences = datasets.wnut_ner("dev")[:40] + [
        (["@Jaxon", "loves", "Montréal", "!!", "unbelievablyyyy", "\x00"],
         ["O", "O", "B-geo-loc", "O", "O", "O"])]
    seq, overlap = 24, 9
    task = NerTask(BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=seq),
                   datasets.WNUT_LABELS, stride=seq - 2 - overlap)
    features = task.encode(TaggedSentences(sentences), training=True)
    tokens = [t for t, _ in sentences]
    encoded = hf(tokens, is_split_into_words=True, max_length=seq, truncation=True, stride=overlap,
                 return_overflowing_tokens=True, padding="max_length")
    np.testing.assert_array_equal(features.inputs["input_ids"], encoded["input_ids"])
    np.testing.assert_array_equal(features.inputs["attention_mask"], encoded["attention_mask"])
    np.testing.assert_array_equal(features.extras["row_index"],
                                  encoded["overflow_to_sample_mapping"])
    assert len(features) > len(sentences) + 10
    windows_before = {}  # text -> windows of it seen so far
    for k, i in enumerate(encoded["overflow_to_sample_mapping"]):
        start = windows_before.get(i, 0) * task.stride
        windows_before[i] = windows_before.get(i, 0) + 1
        whole = hf(tokens[i], is_split_into_words=True).word_ids()[1:-1]
        expected = []
        for t, w in enumerate(encoded.word_ids(k)):
            g = start + t - 1  # piece index in the whole text
            first = w is not None and (g == 0 or whole[g - 1] != w)
            expected.append(datasets.WNUT_LABELS.index(sentences[i][1][w]) if first
                            else IGNORE_INDEX)
        np.testing.assert_array_equal(features.targets["labels"][k], expected)


def test_logits_that_do_not_fit_the_windows_or_labels_are_clear_errors(tokenizer):
    windows = ner_graph.ner_windows(tokenizer, tf.constant(["john lives"]), 4)
    with pytest.raises(ValueError, match=r"6 labels but 5 label names"):
        ner_graph.decode_entities(tf.zeros([1, SEQ, 6]), windows, tf.constant(["john lives"]),
                                  LABELS[:5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"one row per window position"):
        ner_graph.decode_entities(tf.zeros([2, SEQ, 6]), windows, tf.constant(["john lives"]),
                                  LABELS)


@pytest.mark.slow
def test_a_real_tagger_serves_the_tags_of_its_training_windows(tokenizer):
    """A tiny BertTokenClassifier behind the serving path (one tf.function, [None] strings): each
    served word tag is the model's argmax on the encode() window that max_context marks."""
    from bert_tf import BertConfig, BertEncoder
    task = NerTask(tokenizer, LABELS, stride=3)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=SEQ)
    model = task.build_model(BertEncoder(config))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(text):
        inputs, state = task.serving_features({"text": text})
        return task.decode(model(inputs, training=False), state, {"text": text})

    records = task.records_from_texts(["John Smith lives in New York City", "Zoë ☃ paris"]
                                      + task.warmup_texts()["text"])
    features = task.encode(records)
    inputs = {k: tf.constant(v) for k, v in features.inputs.items()}
    predicted = np.argmax(model(inputs, training=False)["logits"].numpy(), -1)
    served = serve(tf.constant(task.record_texts(records)["text"]))
    for i, (tokens, _) in enumerate(records.sentences):
        expected = ["O"] * len(tokens)
        for w, t in zip(*np.nonzero((features.extras["row_index"][:, None] == i)
                                    & features.extras["max_context"])):
            expected[features.extras["first_word"][w, t]] = LABELS[predicted[w, t]]
        assert as_str(served["word_tags"][i:i + 1])[0][:len(tokens)] == expected
    assert serve(tf.constant([], tf.string))["entity_count"].shape == (0,)
