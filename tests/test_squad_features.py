"""SQuAD windowing (doc stride, max context, answer → token positions) and n-best span decoding,
driven by synthetic whitespace tokens with character offsets (any tokenizer can feed the same)."""

import collections
import re

import numpy as np
import pytest

from bert_tf.data import datasets, squad
from bert_tf.data.squad_features import (SquadFeatureError, answer_token_span, byte_to_char_offsets,
                                         create_features, features_for_examples, stack_features)
from bert_tf.data.squad_postprocess import SquadDecodeError, decode_features, decode_spans

CLS, SEP, PAD = 101, 102, 0


def whitespace_tokenize(text):
    """(ids, offsets [n, 2]) with ids = 1000 + running index; offsets are [start, end) char spans."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    return [1000 + i for i in range(len(spans))], np.array(spans, dtype=np.int64).reshape(-1, 2)


CONTEXT = " ".join(f"w{i}" for i in range(20))  # w0 w1 ... w19


def _features(answer=None, max_seq_length=12, query=(7, 8), doc_stride=3, **kw):
    ids, offsets = whitespace_tokenize(CONTEXT)
    start, end = (None, None) if answer is None else (CONTEXT.index(answer), CONTEXT.index(answer) + len(answer))
    return create_features("ex", list(query), ids, offsets, answer_start=start, answer_end=end, cls_id=CLS,
                           sep_id=SEP, pad_id=PAD, max_seq_length=max_seq_length, doc_stride=doc_stride, **kw)


def test_windows_cover_context_with_stride_and_layout():
    features = _features()
    room = 12 - 2 - 3  # 7 context tokens per window
    starts = [int(f.offsets[4, 0]) for f in features]
    # run_squad.py's loop: windows start 3 tokens apart until one reaches the end of the context.
    assert [CONTEXT[s:].split()[0] for s in starts] == ["w0", "w3", "w6", "w9", "w12", "w15"]
    assert all(f.attention_mask.sum() == 4 + room + 1 for f in features[:-1])
    last = features[-1]  # w15..w19, then padding
    assert last.input_ids.tolist() == [CLS, 7, 8, SEP] + [1000 + i for i in range(15, 20)] + [SEP, PAD, PAD]
    assert last.attention_mask.tolist() == [1] * 10 + [0] * 2
    first = features[0]
    assert first.input_ids.tolist()[:4] == [CLS, 7, 8, SEP] and first.input_ids[11] == SEP
    assert first.token_type_ids.tolist() == [0] * 4 + [1] * 8
    assert first.attention_mask.tolist() == [1] * 12
    assert (first.offsets[:4] == -1).all() and (first.offsets[11] == -1).all()
    # Every token appears in some window, and is "max context" in exactly one.
    seen = {}
    for f in features:
        for pos in np.nonzero(f.offsets[:, 0] >= 0)[0]:
            word = CONTEXT[f.offsets[pos, 0]:f.offsets[pos, 1]]
            seen.setdefault(word, 0)
            seen[word] += int(f.token_is_max_context[pos])
    assert seen == {f"w{i}": 1 for i in range(20)}


def test_max_context_prefers_the_more_central_window():
    features = _features()
    # w4 is in window 0 (w0-w6, position 4: 4 left, 2 right -> 2) and window 1 (w3-w9: 1 left) -> 0.
    def is_max(f, word):
        pos = [p for p in range(12) if f.offsets[p, 0] >= 0 and CONTEXT[f.offsets[p, 0]:f.offsets[p, 1]] == word]
        return bool(f.token_is_max_context[pos[0]]) if pos else None
    assert is_max(features[0], "w4") and not is_max(features[1], "w4")
    assert is_max(features[1], "w6") and not is_max(features[0], "w6") and not is_max(features[2], "w6")


def test_answer_positions_inside_and_outside_windows():
    features = _features(answer="w7 w8")
    targets = [(f.start_position, f.end_position) for f in features]
    # window 1 = w3..w9 at positions 4..10: w7 -> 8, w8 -> 9; window 2 = w6..w12: w7 -> 5.
    assert targets == [(0, 0), (8, 9), (5, 6), (0, 0), (0, 0), (0, 0)]
    for f, (s, e) in zip(features, targets):
        if s:
            assert CONTEXT[f.offsets[s, 0]:f.offsets[e, 1]] == "w7 w8"
    assert all((f.start_position, f.end_position) == (0, 0) for f in _features(answer=None))


def test_partial_token_answer_and_query_truncation():
    ids, offsets = whitespace_tokenize("Father Julius Nieuwland made it")
    assert answer_token_span(offsets, 0, len("Father Julius Nieuwl")) == (0, 2)
    features = create_features("e", list(range(50)), ids, offsets, answer_start=7, answer_end=13,
                               cls_id=CLS, sep_id=SEP, max_seq_length=20, max_query_length=4)
    assert len(features) == 1 and features[0].input_ids[:6].tolist() == [CLS, 0, 1, 2, 3, SEP]
    assert (features[0].start_position, features[0].end_position) == (7, 7)  # "Julius"
    stacked = stack_features(features)
    assert stacked["input_ids"].shape == (1, 20) and stacked["offsets"].shape == (1, 20, 2)
    assert stacked["input_ids"][0, 11:].tolist() == [SEP] + [PAD] * 8


@pytest.mark.parametrize("kwargs,message", [
    (dict(max_seq_length=5, query=(1, 2, 3)), "leaves no room for context"),
    (dict(doc_stride=0), "doc_stride must be positive"),
])
def test_feature_errors(kwargs, message):
    with pytest.raises(SquadFeatureError, match=message):
        _features(**kwargs)


def test_feature_errors_answer_not_on_a_token():
    ids, offsets = whitespace_tokenize("a  b")
    with pytest.raises(SquadFeatureError, match="example q: no context token overlaps"):
        create_features("q", [1], ids, offsets, answer_start=1, answer_end=2, cls_id=CLS, sep_id=SEP)


# ---------------------------------------------------------------------------------- decoding

def _logits_for(features, answer_words, noise_seed=0):
    """Start/end logits that point at `answer_words` (first/last word) where the window has them."""
    rng = np.random.default_rng(noise_seed)
    start = rng.normal(0, 0.1, size=(len(features), features[0].input_ids.shape[0]))
    end = rng.normal(0, 0.1, size=start.shape)
    for f, feature in enumerate(features):
        for pos in range(start.shape[1]):
            if feature.offsets[pos, 0] < 0:
                continue
            word = CONTEXT[feature.offsets[pos, 0]:feature.offsets[pos, 1]]
            start[f, pos] += 5.0 * (word == answer_words[0])
            end[f, pos] += 5.0 * (word == answer_words[-1])
    return start, end


def test_decode_recovers_answer_across_windows():
    features = _features()
    start, end = _logits_for(features, ["w7", "w8"])
    result = decode_features({"ex": CONTEXT}, features, start, end, n_best_size=5, max_answer_length=4)
    assert result.predictions == {"ex": "w7 w8"}
    nbest = result.nbest["ex"]
    assert nbest[0]["text"] == "w7 w8" and len(nbest) == 5
    assert len({e["text"] for e in nbest}) == 5  # deduplicated across windows
    assert sum(e["probability"] for e in nbest) == pytest.approx(1.0)
    assert nbest[0]["probability"] > 0.9
    # max_answer_length below the span length forbids it.
    short = decode_features({"ex": CONTEXT}, features, start, end, max_answer_length=1)
    assert short.predictions["ex"] in ("w7", "w8")


def test_decode_skips_non_max_context_starts_and_non_context_tokens():
    features = _features()
    start, end = _logits_for(features, ["w6", "w6"])
    # Make window 0's view of w6 (not its max-context window) the single best start logit.
    pos0 = 4 + 6
    start[0, pos0] += 10.0  # (end tokens need no max context, as in run_squad.py)
    start[:, 0] = end[:, 0] = 100.0  # [CLS] is never an answer in 1.1 mode
    result = decode_features({"ex": CONTEXT}, features, start, end)
    assert result.predictions["ex"] == "w6"
    best = result.nbest["ex"][0]
    assert best["start_logit"] < 10  # it came from window 1 or 2, not window 0's boosted logit


def test_null_threshold_for_squad_2():
    features = _features()
    start, end = _logits_for(features, ["w7", "w8"])
    best = start[1, 8] + end[1, 9]  # w7 w8 in window 1 (w3..w9), w7's max-context window
    start[:, 0] = end[:, 0] = 0.0
    start[2, 0] = end[2, 0] = -1.0  # the null score is the minimum over windows: -2.0
    result = decode_features({"ex": CONTEXT}, features, start, end, version_2_with_negative=True)
    diff = result.null_score_diff["ex"]
    assert diff < 0 and result.predictions["ex"] == "w7 w8"
    assert any(e["text"] == "" for e in result.nbest["ex"])
    assert diff == pytest.approx(-2.0 - result.nbest["ex"][0]["start_logit"] - result.nbest["ex"][0]["end_logit"])
    assert best == pytest.approx(result.nbest["ex"][0]["start_logit"] + result.nbest["ex"][0]["end_logit"])
    # A threshold below the difference makes it predict no answer.
    no_answer = decode_features({"ex": CONTEXT}, features, start, end, version_2_with_negative=True,
                                null_score_diff_threshold=diff - 1e-6)
    assert no_answer.predictions["ex"] == ""
    start[:, 0] = end[:, 0] = 50.0
    assert decode_features({"ex": CONTEXT}, features, start, end,
                           version_2_with_negative=True).predictions["ex"] == ""


def test_decode_accepts_none_offsets_and_checks_shapes():
    offsets = [[None, (0, 3), (4, 7), None]]
    result = decode_spans({"e": "abc def"}, ["e"], offsets, [[0, 5, 1, 0]], [[0, 1, 5, 0]])
    assert result.predictions == {"e": "abc def"}
    with pytest.raises(SquadDecodeError, match="must agree"):
        decode_spans({"e": "abc def"}, ["e", "e"], offsets, [[0, 5, 1, 0]], [[0, 1, 5, 0]])
    with pytest.raises(SquadDecodeError, match="has no context"):
        decode_spans({}, ["e"], offsets, [[0, 5, 1, 0]], [[0, 1, 5, 0]])
    with pytest.raises(SquadDecodeError, match="past the end"):
        decode_spans({"e": "abc"}, ["e"], offsets, [[0, 5, 1, 0]], [[0, 1, 5, 0]])


@pytest.mark.slow
def test_gold_round_trip_on_real_squad_fixture():
    """Features built from every real fixture answer, logits placed on their target positions, must
    decode back to the gold text, except that a partial-token answer ("Father Julius Nieuwl") comes
    back as the whole whitespace token, which is all a token-level span can express."""
    from bert_tf import metrics
    data = datasets.squad_fixture()
    examples = squad.parse_squad(data)
    contexts = {ex.id: ex.context for ex in examples}
    features = features_for_examples(examples, whitespace_tokenize, cls_id=CLS, sep_id=SEP,
                                     max_seq_length=64, max_query_length=16, doc_stride=16)
    per_example = collections.Counter(f.example_id for f in features)
    assert set(per_example) == set(contexts) and min(per_example.values()) > 1  # several windows each
    start = np.full((len(features), 64), -5.0)
    end = np.full((len(features), 64), -5.0)
    for f, feature in enumerate(features):
        if feature.start_position:
            start[f, feature.start_position] = end[f, feature.end_position] = 5.0
    predictions = decode_features(contexts, features, start, end, max_answer_length=200).predictions
    assert len(predictions) == 5
    assert predictions["5733b1da4776f4190066106b"] == "Father Julius Nieuwland"
    score = metrics.squad(data, predictions)
    assert score["exact_match"] == pytest.approx(80.0)  # 4 of 5 exact; the cut-off answer is not
    assert score["f1"] == pytest.approx(100 * (4 + 2 / 3) / 5)  # "nieuwland" vs "nieuwl": 2 of 3 tokens


def test_byte_offsets_from_tensorflow_text_become_char_offsets():
    tf_text = pytest.importorskip("tensorflow_text")
    text = "Café in Zürich — naïve 東京 ok"
    _, begins, ends = tf_text.WhitespaceTokenizer().tokenize_with_offsets([text])
    byte_spans = np.stack([begins.numpy()[0], ends.numpy()[0]], axis=-1)
    chars = byte_to_char_offsets(text, byte_spans)
    assert [text[s:e] for s, e in chars] == text.split()
    assert byte_spans[-1].tolist() != chars[-1].tolist()  # they do differ after non-ASCII text
    with pytest.raises(SquadFeatureError, match="outside"):
        byte_to_char_offsets("ab", [[0, 3]])
