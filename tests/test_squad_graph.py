"""SQuAD's graph inference path (`bert_tf.tasks.squad_graph`) against the numpy references it
replaces at serving time: the windows of `squad_features.create_features` (through
`SquadTask.encode`, the training path) and the answers of `squad_postprocess.decode_spans`, on
random logits with many ties; inside a tf.function with [None] string signatures, after a
SavedModel round trip, and for an empty batch."""

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import squad_features
from bert_tf.data.squad import SquadExample
from bert_tf.data.squad_postprocess import decode_spans
from bert_tf.tasks import SquadTask
from bert_tf.tasks.squad import SquadRecords
from bert_tf.tasks.squad_graph import decode_answers, qa_windows
from bert_tf.text import BertTokenizer

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the river flows past old mill where water runs fast in spring who wrote it cafe was "
         "built by ada lovelace 1843 what when fun 中 文 . , ? «").split()
# Continuation pieces so that some words split ("flow ##s", "spring" whole, "millers" -> mill ##ers).
VOCAB = SPECIAL + WORDS + ["##s", "##ers", "##ing", "flow"]

QUESTIONS = ["Who wrote it?", "When was the old mill built, and by whom, and where does the river flow?",
             "What?", "Where is the café?"]
CONTEXTS = [
    "The river flows past the old mill, where the water runs fast in spring.",
    "Ada Lovelace wrote it in 1843. " * 6 + "The millers built the old mill by the river.",
    "",  # no pieces at all: one window [CLS] question [SEP] [SEP]
    "Café « 中文 » 😀 was built by the river; fun 😀 in spring, when the water runs fast. " * 3,
]


def tiny_tokenizer(sequence_length):
    return BertTokenizer(VOCAB, sequence_length=sequence_length)


def to_numpy(tensors):
    return {k: v.numpy() for k, v in tensors.items()}


def char_offsets(context, byte_offsets):
    """[.., S] byte offsets (-1 off the context) -> character offsets."""
    byte_offsets = np.asarray(byte_offsets)
    chars = squad_features.byte_to_char_offsets(context, np.maximum(byte_offsets, 0).reshape(-1, 1))
    return np.where(byte_offsets >= 0, chars.reshape(byte_offsets.shape), -1)


def windows_for(tokenizer, questions, contexts, doc_stride, max_query_length):
    return to_numpy(qa_windows(tokenizer, tf.constant(questions, tf.string),
                               tf.constant(contexts, tf.string), doc_stride, max_query_length))


@pytest.mark.parametrize("sequence_length,doc_stride,max_query_length", [
    (16, 3, 4), (40, 128, 64), (24, 5, 6), (32, 1, 20), (12, 2, 2)])
def test_windows_equal_the_training_windows(sequence_length, doc_stride, max_query_length):
    tokenizer = tiny_tokenizer(sequence_length)
    task = SquadTask(tokenizer, doc_stride=doc_stride, max_query_length=max_query_length)
    examples = [SquadExample(f"q{i}", "", q, c, ()) for i, (q, c) in enumerate(zip(QUESTIONS, CONTEXTS))]
    reference = task.encode(SquadRecords(examples, None, "inline"), training=True)
    windows = windows_for(tokenizer, QUESTIONS, CONTEXTS, doc_stride, max_query_length)
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(windows[name], reference.inputs[name], err_msg=name)
    assert windows["example_index"].dtype == np.int32
    assert [f"q{i}" for i in windows["example_index"]] == reference.extras["example_ids"]
    np.testing.assert_array_equal(windows["token_is_max_context"], reference.extras["token_is_max_context"])
    for w, row in enumerate(windows["example_index"]):
        for side, name in enumerate(("start_offsets", "end_offsets")):
            np.testing.assert_array_equal(char_offsets(CONTEXTS[row], windows[name][w]),
                                          reference.extras["offsets"][w, :, side], err_msg=name)
    counts = np.bincount(windows["example_index"], minlength=len(CONTEXTS))
    if sequence_length == 16 and doc_stride == 3:
        assert counts[1] > 3 and counts[3] > 3 and counts[2] == 1  # several windows; empty: one
        # The empty context's window, written out: [CLS] what ? [SEP] [SEP] [PAD]...
        w = int(np.nonzero(windows["example_index"] == 2)[0][0])
        ids = [tokenizer.token_to_id(t) for t in ("[CLS]", "what", "?", "[SEP]", "[SEP]")]
        assert windows["input_ids"][w].tolist() == ids + [0] * 11
        assert windows["token_type_ids"][w].tolist() == [0] * 4 + [1] + [0] * 11
        assert (windows["start_offsets"][w] == -1).all()


def test_windows_check_their_settings():
    tokenizer = tiny_tokenizer(8)
    with pytest.raises(ValueError, match="doc_stride must be positive"):
        qa_windows(tokenizer, tf.constant(["a"]), tf.constant(["b"]), 0, 4)
    # An 8-piece sequence leaves no context room after a 5-piece question + 3 special tokens.
    with pytest.raises(tf.errors.InvalidArgumentError, match="leaves no room for context"):
        qa_windows(tokenizer, tf.constant(["the river flows past the mill"]), tf.constant(["b"]), 2, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        qa_windows(tokenizer, tf.constant(["a", "b"]), tf.constant(["b"]), 2, 5)


# ---------------------------------------------------------------------------------- decoding

def window_char_offsets(windows, contexts):
    """[W, S, 2] character spans of the windows' context tokens, (-1, -1) elsewhere."""
    return np.stack([np.stack([char_offsets(contexts[row], windows["start_offsets"][w]),
                               char_offsets(contexts[row], windows["end_offsets"][w])], -1)
                     for w, row in enumerate(windows["example_index"])])


def reference_answers(windows, contexts, start, end, offsets=None, **settings):
    """decode_spans (the numpy reference) on the same windows: (answer, score) per row."""
    ids = [f"r{row}" for row in windows["example_index"]]
    if offsets is None:
        offsets = window_char_offsets(windows, contexts)
    result = decode_spans({f"r{i}": c for i, c in enumerate(contexts)}, ids, offsets, start, end,
                          windows["token_is_max_context"],
                          attention_mask=np.asarray(windows["attention_mask"]), **settings)
    out = []
    for i in range(len(contexts)):
        answer = result.predictions[f"r{i}"]
        # The answer's own n-best entry (the first with its text) carries its logits.
        entry = next(e for e in result.nbest[f"r{i}"] if e["text"] == answer)
        out.append((answer, entry["start_logit"] + entry["end_logit"]))
    return out


def random_logits(rng, shape, draw):
    if draw % 3 == 0:  # small integers: many equal logits and equal sums, so tie-breaking counts
        return rng.integers(-3, 4, size=shape).astype(np.float32)
    logits = rng.normal(0, 2, size=shape).astype(np.float32)
    if draw % 3 == 2:  # large [CLS] and question logits: null answers, or no span in the top k
        logits[:, :4] += 6
    return logits


DRAWS = 24  # every context 24 times: one batch of 96 rows, independent logits per row


@pytest.fixture(scope="module")
def many_windows():
    contexts = CONTEXTS * DRAWS
    windows = windows_for(tiny_tokenizer(16), QUESTIONS * DRAWS, contexts, doc_stride=3,
                          max_query_length=4)
    return windows, contexts, window_char_offsets(windows, contexts)


@pytest.mark.parametrize("version_2,threshold", [(False, 0.0), (True, 0.0), (True, -1.5), (True, 2.0)])
@pytest.mark.parametrize("n_best_size,max_answer_length", [(1, 30), (20, 30), (3, 2), (20, 1)])
def test_decode_answers_equals_decode_spans(many_windows, version_2, threshold, n_best_size,
                                            max_answer_length):
    windows, contexts, offsets = many_windows
    draws = DRAWS
    rng = np.random.default_rng([n_best_size, max_answer_length, int(version_2), int(threshold * 10) + 100])
    settings = dict(n_best_size=n_best_size, max_answer_length=max_answer_length)
    mismatches, empty = [], 0
    for draw in range(3):
        start = random_logits(rng, windows["input_ids"].shape, draw)
        end = random_logits(rng, windows["input_ids"].shape, draw)
        got = to_numpy(decode_answers(start, end, windows, tf.constant(contexts), version_2=version_2,
                                      null_score_diff_threshold=threshold, **settings))
        expected = reference_answers(windows, contexts, start, end, offsets, version_2_with_negative=version_2,
                                     null_score_diff_threshold=threshold, **settings)
        for i, (answer, score) in enumerate(expected):
            text = got["answer"][i].decode("utf-8")
            a, b = int(got["answer_start"][i]), int(got["answer_end"][i])
            if text != answer or abs(got["score"][i] - score) > 1e-5:
                mismatches.append((draw, i, text, answer, float(got["score"][i]), score))
            assert (a, b) == (-1, -1) if not text else contexts[i][a:b] == text
            empty += not text
    assert not mismatches, mismatches[:5]
    # Both kinds of answer occur: spans, and "" beyond the empty context's rows in 2.0.
    assert 3 * len(contexts) - empty >= 40
    assert empty > 3 * draws if version_2 else empty >= 3 * draws
    assert got["score"].dtype == np.float32 and got["answer_start"].dtype == np.int64


def test_padding_logits_do_not_change_the_answer(many_windows):
    """An export that cuts or packs padding returns zeros there, the Keras model whatever the
    padding tokens give: the answer must not depend on it (huge padding logits would otherwise
    fill the n-best lists and push out the real context tokens)."""
    windows, contexts, _ = many_windows
    mask = np.asarray(windows["attention_mask"]) > 0
    assert not mask.all()   # the fixture has padded windows
    rng = np.random.default_rng(7)
    start = rng.normal(size=mask.shape)
    end = rng.normal(size=mask.shape)
    settings = dict(n_best_size=3, max_answer_length=30, version_2=True)
    zeros = to_numpy(decode_answers(np.where(mask, start, 0.0), np.where(mask, end, 0.0),
                                    windows, tf.constant(contexts), **settings))
    huge = to_numpy(decode_answers(np.where(mask, start, 50.0), np.where(mask, end, 50.0),
                                   windows, tf.constant(contexts), **settings))
    for name in ("answer", "answer_start", "answer_end", "score"):
        np.testing.assert_array_equal(zeros[name], huge[name], err_msg=name)


def test_decode_answers_without_a_valid_span():
    tokenizer = tiny_tokenizer(16)
    contexts = [CONTEXTS[0]]
    windows = windows_for(tokenizer, ["who wrote it"], contexts, 3, 4)
    start = np.zeros(windows["input_ids"].shape, np.float32)
    end = np.zeros_like(start)
    start[:, 0] = end[:, 0] = 1.0                 # null score 2
    first = int(np.argmax(windows["start_offsets"][0] >= 0))  # window 0's first context token
    start[0, first], end[0, first + 1] = 0.9, 0.9  # best span 1.8 < null
    end[0, first] = 0.5
    for n_best_size, answer in ((1, ""), (2, "The river")):
        # n_best_size 1: the top start and end are [CLS], so no span is valid and the answer is
        # "" even with a threshold that would accept the best span; 2 admits "The river".
        got = to_numpy(decode_answers(start, end, windows, tf.constant(contexts), n_best_size,
                                      30, True, 5.0))
        assert got["answer"][0].decode() == answer
        assert got["score"][0] == pytest.approx(1.8 if answer else 2.0)  # "": the null score
        assert reference_answers(windows, contexts, start, end, n_best_size=n_best_size,
                                 max_answer_length=30, version_2_with_negative=True,
                                 null_score_diff_threshold=5.0)[0][0] == answer
    # v1: every top-1 start on the question -> no valid span, the answer is "" with score 0.
    start[:, 1] = 9.0
    got = to_numpy(decode_answers(start, end, windows, tf.constant(contexts), 1, 30))
    assert got["answer"][0] == b"" and got["score"][0] == 0.0 and got["answer_start"][0] == -1


def test_decode_answers_checks_its_inputs():
    contexts = tf.constant([CONTEXTS[0]])
    windows = windows_for(tiny_tokenizer(16), ["who"], [CONTEXTS[0]], 3, 4)
    logits = np.zeros(windows["input_ids"].shape, np.float32)
    with pytest.raises(ValueError, match="n_best_size and max_answer_length must be at least 1"):
        decode_answers(logits, logits, windows, contexts, 0, 30)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must match the windows"):
        decode_answers(logits[:, :-1], logits[:, :-1], windows, contexts, 20, 30)


# ---------------------------------------------------------------------------------- graph

def fake_logits(input_ids):
    """A deterministic stand-in for the model: float32 [W, S] start/end logits from the ids."""
    x = tf.cast(input_ids, tf.float32) + tf.cast(tf.range(tf.shape(input_ids)[1]), tf.float32)
    return {"start_logits": tf.sin(x * 1.7), "end_logits": tf.cos(x * 0.3)}


class QaModule(tf.Module):
    def __init__(self, task):
        super().__init__()
        self.task = task
        self.tokenizer = task.tokenizer  # tracked, so the SavedModel keeps its resources

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
    def answer(self, question, context):
        texts = {"question": question, "context": context}
        inputs, state = self.task.serving_features(texts)
        return self.task.decode(fake_logits(inputs["input_ids"]), state, texts)


def test_graph_path_in_tf_function_saved_model_and_empty_batch(tmp_path):
    task = SquadTask(tiny_tokenizer(16), doc_stride=3, max_query_length=4, n_best_size=5,
                     max_answer_length=4, version_2=True, null_score_diff_threshold=-0.5)
    module = QaModule(task)
    questions, contexts = tf.constant(QUESTIONS), tf.constant(CONTEXTS)
    # Eager reference: the same functions outside any graph.
    inputs, state = task.serving_features({"question": questions, "context": contexts})
    eager = to_numpy(task.decode(fake_logits(inputs["input_ids"]), state, {"context": contexts}))
    traced = to_numpy(module.answer(questions, contexts))
    tf.saved_model.save(module, str(tmp_path / "qa"))
    loaded = tf.saved_model.load(str(tmp_path / "qa"))
    restored = to_numpy(loaded.answer(questions, contexts))
    for name in ("answer", "score", "answer_start", "answer_end"):
        np.testing.assert_array_equal(traced[name], eager[name], err_msg=name)
        np.testing.assert_array_equal(restored[name], eager[name], err_msg=name)
    assert sum(a != b"" for a in eager["answer"]) >= 2  # spans were found, not only null answers
    empty = to_numpy(loaded.answer(tf.constant([], tf.string), tf.constant([], tf.string)))
    assert {k: v.shape for k, v in empty.items()} == {k: (0,) for k in eager}
    eager_empty = to_numpy(module.answer.python_function(tf.constant([], tf.string),
                                                         tf.constant([], tf.string)))
    assert all(v.shape == (0,) for v in eager_empty.values())


# ---------------------------------------------------------------------------------- task

def test_task_rows_score_and_warmup():
    task = SquadTask(tiny_tokenizer(16), doc_stride=3, max_query_length=4)
    context = CONTEXTS[0]
    dataset = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "a", "question": "what runs fast?",
         "answers": [{"text": "the water", "answer_start": context.index("the water")}]},
        {"id": "b", "question": "what flows?", "answers": [{"text": "river", "answer_start": 4}]}]}]}]}
    from bert_tf.data.squad import parse_squad
    records = SquadRecords(parse_squad(dataset), dataset, "inline")
    texts = {k: tf.constant(v) for k, v in task.record_texts(records).items()}
    assert list(texts) == list(task.serving_input_names)
    inputs, state = task.serving_features(texts)
    # Logits that point at "the water" in every window that has both tokens as context.
    offsets = state["start_offsets"].numpy()
    water = context.index("the water")
    start = np.where(offsets == water, 5.0, 0.0).astype(np.float32)
    end = np.where(state["end_offsets"].numpy() == water + len("the water"), 5.0, 0.0).astype(np.float32)
    decoded = to_numpy(task.decode({"start_logits": start, "end_logits": end}, state, texts))
    rows = task.rows(records, decoded)
    assert rows[0] == {"id": "a", "question": "what runs fast?", "answer": "the water", "score": 10.0,
                       "answer_start": water, "answer_end": water + 9}
    assert rows[1]["answer"] == "the water"  # the same logits: wrong for question b
    assert task.score(records, decoded) == {"exact_match": 50.0, "f1": 50.0, "total": 2}
    warmup = task.warmup_texts()
    _, warm_state = task.serving_features({k: tf.constant(v) for k, v in warmup.items()})
    assert np.bincount(warm_state["example_index"].numpy()).max() > 1  # a multi-window context


def test_real_vocab_windows_equal_the_training_windows(minilm_vocab):
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=48)
    task = SquadTask(tokenizer, doc_stride=10, max_query_length=12)
    examples = [SquadExample(f"q{i}", "", q, c, ()) for i, (q, c) in enumerate(zip(QUESTIONS, CONTEXTS))]
    reference = task.encode(SquadRecords(examples, None, "inline"), training=True)
    windows = windows_for(tokenizer, QUESTIONS, CONTEXTS, 10, 12)
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(windows[name], reference.inputs[name], err_msg=name)
    np.testing.assert_array_equal(windows["token_is_max_context"], reference.extras["token_is_max_context"])
    assert len(windows["example_index"]) > len(CONTEXTS) + 3
    # And the answers on these windows equal decode_spans' (real pieces: "cafe", "##s", ...).
    rng = np.random.default_rng(7)
    spans = 0
    for draw in range(3):
        start, end = (random_logits(rng, windows["input_ids"].shape, draw) for _ in range(2))
        got = to_numpy(decode_answers(start, end, windows, tf.constant(CONTEXTS), 20, 5, True, -0.5))
        expected = reference_answers(windows, CONTEXTS, start, end, n_best_size=20,
                                     max_answer_length=5, version_2_with_negative=True,
                                     null_score_diff_threshold=-0.5)
        assert [a.decode() for a in got["answer"]] == [a for a, _ in expected]
        np.testing.assert_allclose(got["score"], [s for _, s in expected], atol=1e-5)
        spans += sum(a != b"" for a in got["answer"])
    assert spans >= 3
