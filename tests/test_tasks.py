"""Task feature building against references no one here wrote: Hugging Face's word alignment for
NER labels, the real SQuAD fixture's gold answers for span targets, the official SQuAD metric."""


import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import datasets
from bert_tf.data.squad import SquadExample
from bert_tf.tasks import IGNORE_INDEX, ClassificationTask, NerTask, SquadTask
from bert_tf.tasks.ner import TaggedSentences
from bert_tf.tasks.squad import SquadRecords
from bert_tf.text import BertTokenizer

REFERENCE_IDS = [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_vocab):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.BertTokenizerFast(minilm_vocab, do_lower_case=True)
    assert tokenizer("Hello, my dog is cute")["input_ids"] == REFERENCE_IDS
    return tokenizer


def test_ner_unknown_tag_names_the_sentence(minilm_vocab):
    task = NerTask(BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=16), ("O", "B-X", "I-X"))
    with pytest.raises(ValueError, match=r"f\.conll: sentence 1: tag 'B-Y'"):
        task.encode(TaggedSentences([(["a"], ["B-Y"])], "f.conll"))


def test_squad_targets_recover_the_gold_answers_through_the_metric(minilm_vocab):
    """Features of the real fixture with small windows (several per question): logits that point
    at each window's target decode, across windows, to the gold answer text."""
    fixture = datasets.squad_fixture()
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=96)
    task = SquadTask(tokenizer, doc_stride=32, max_query_length=24)
    from bert_tf.data.squad import parse_squad
    records = SquadRecords(parse_squad(fixture), fixture, "fixture")
    features = task.encode(records, training=True)
    ids = features.extras["example_ids"]
    assert len(ids) > 2 * len(records.examples)  # doc stride produced several windows each
    start, end = features.targets["start_positions"], features.targets["end_positions"]
    assert ((start > 0) == (end > 0)).all() and (end >= start).all()
    # Targets sit on context tokens (token_type 1) and cover the answer characters.
    for f in np.nonzero(start)[0]:
        assert features.inputs["token_type_ids"][f, start[f]] == 1
        example = next(e for e in records.examples if e.id == ids[f])
        span = features.extras["offsets"][f]
        answer = example.answers[0]
        assert span[start[f], 0] <= answer.start < span[start[f], 1]
        assert span[end[f], 0] < answer.end <= span[end[f], 1]
    seq = tokenizer.sequence_length
    big = 20.0
    start_logits = np.where(np.arange(seq) == start[:, None], big, 0.0).astype(np.float32)
    end_logits = np.where(np.arange(seq) == end[:, None], big, 0.0).astype(np.float32)
    # The inference path cuts the same windows from the raw texts, so the training targets'
    # logits line up with them; windows without the answer point at [CLS], which is never a
    # span: the decoder takes the window that has it.
    texts = {k: tf.constant(v) for k, v in task.record_texts(records).items()}
    inputs, state = task.serving_features(texts)
    np.testing.assert_array_equal(inputs["input_ids"].numpy(), features.inputs["input_ids"])

    def score(start_logits, end_logits):
        decoded = task.decode({"start_logits": start_logits, "end_logits": end_logits}, state, texts)
        return task.score(records, {k: v.numpy() for k, v in decoded.items()})

    # Training targets use the first gold answer; the official metric takes the best gold answer.
    assert score(start_logits, end_logits) == {"exact_match": 100.0, "f1": 100.0, "total": 5}
    # Moving every end one token left breaks the spans, and the metric sees it.
    assert score(start_logits, np.roll(end_logits, -1, axis=1))["f1"] < 100.0


def test_squad_offsets_are_characters_for_non_ascii_contexts(minilm_vocab):
    context = "Café «Zürich» opened in 1890; Motörhead played there."
    example = SquadExample("q1", "", "When did it open?", context,
                           (squad_features_answer(context, "1890"),))
    task = SquadTask(BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=64))
    records = SquadRecords([example], None, "inline")
    features = task.encode(records, training=True)
    s, e = features.targets["start_positions"][0], features.targets["end_positions"][0]
    offsets = features.extras["offsets"][0]
    assert context[offsets[s, 0]:offsets[e, 1]] == "1890"
    # Every context piece's character span reads, normalized as BERT does, as the piece itself.
    import unicodedata
    ids = features.inputs["input_ids"][0]
    tokenizer = task.tokenizer
    pieces = [(tokenizer.id_to_token(int(ids[i])), context[a:b])
              for i, (a, b) in enumerate(offsets) if a >= 0]
    assert len(pieces) >= 13  # cafe « zurich » opened in 1890 ; mot ##or ##head played there .
    for token, text in pieces:
        plain = "".join(c for c in unicodedata.normalize("NFD", text.lower())
                        if unicodedata.category(c) != "Mn")
        assert plain == token.removeprefix("##"), (token, text)


def squad_features_answer(context, text):
    from bert_tf.data.squad import SquadAnswer
    return SquadAnswer(text, context.index(text))


def test_classification_pairs_pack_like_hf(minilm_vocab, hf_tokenizer):
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=24)
    task = ClassificationTask(tokenizer, ("no", "yes"), text_pair_column="b")
    records = task.records_from_texts(["Is it raining?\tThe streets are wet, très wet, today.",
                                       "a\tb"])
    features = task.encode(records)
    ref = hf_tokenizer(records.texts, records.text_pairs, max_length=24, truncation=True,
                       padding="max_length")
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(features.inputs[name], np.array(ref[name]))
    with pytest.raises(ValueError, match="line 1: a text-pair model needs"):
        task.records_from_texts(["no tab here"])
