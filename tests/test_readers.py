"""Task file readers: classification CSV/TSV/JSONL, CoNLL token/tag files, SQuAD JSON.
Bad data must fail with one error that names the file and the line/record."""

import json

import pytest

from bert_tf.data import classification, conll, readers, squad


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------- classification

def test_csv_with_quotes_commas_newlines_and_pairs(tmp_path):
    path = _write(tmp_path / "train.csv",
                  'sentence1,sentence2,label\n'
                  '"Hello, world","He said ""hi""",entailment\n'
                  '"two\nlines",short,neutral\n'
                  'plain,text,entailment\n')
    data = classification.read_classification(path, text_column="sentence1",
                                              text_pair_column="sentence2")
    assert data.texts == ["Hello, world", "two\nlines", "plain"]
    assert data.text_pairs == ['He said "hi"', "short", "text"]
    assert data.label_names == ("entailment", "neutral")
    assert data.labels == [0, 1, 0]
    assert data.lines == [2, 3, 5]  # a record's first line, also after a multi-line field


def test_tsv_is_unquoted_like_glue(tmp_path):
    path = _write(tmp_path / "dev.tsv", 'text\tlabel\n"quoted" start\t1\nnext\t0\n')
    data = classification.read_classification(path)
    assert data.texts == ['"quoted" start', "next"]
    assert data.label_names == ("0", "1")


def test_jsonl_integer_labels_sort_numerically(tmp_path):
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate([10, 2, 9, 2])]
    path = _write(tmp_path / "x.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "\n")
    data = classification.read_classification(path)
    assert data.label_names == ("2", "9", "10")
    assert data.labels == [2, 0, 1, 0]


def test_label_vocabulary_from_train_and_unknown_label_in_eval(tmp_path):
    train = classification.read_classification(_write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n"))
    dev = classification.read_classification(_write(tmp_path / "dev.csv", "text,label\nc,pos\n"),
                                             label_names=train.label_names)
    assert dev.labels == [1]
    bad = _write(tmp_path / "test.csv", "text,label\nc,pos\nd,neutral\n")
    with pytest.raises(classification.ClassificationDataError,
                       match=r"test\.csv: line 3: label 'neutral' is not one of"):
        classification.read_classification(bad, label_names=train.label_names)


def test_unlabeled_file_for_prediction(tmp_path):
    data = classification.read_classification(_write(tmp_path / "p.csv", "text\nhello\n"), label_column=None)
    assert data.texts == ["hello"] and data.labels is None


@pytest.mark.parametrize("name,text,message", [
    ("a.csv", "text,label\nhello\n", r"a\.csv: line 2: 1 fields, but the header has 2"),
    ("a.csv", "review,label\nhello,pos\n", r"a\.csv: line 2: missing text column 'text'"),
    ("a.csv", "text,label\nhello,\n", r"a\.csv: line 2: empty label"),
    ("a.csv", "text,label\n  ,pos\n", r"a\.csv: line 2: empty text"),
    ("a.csv", 'text,label\n"unterminated,pos\n', r"a\.csv: line \d+: malformed CSV"),
    ("a.csv", "", r"a\.csv: empty file"),
    ("a.csv", "text,label\n", r"a\.csv: no records"),
    ("a.jsonl", '{"text": "x", "label": 1}\n{"text": "y", "label": 1\n', r"a\.jsonl: line 2: invalid JSON"),
    ("a.jsonl", '["x", 1]\n', r"a\.jsonl: line 1: expected a JSON object"),
    ("a.jsonl", '{"text": null, "label": 1}\n', r"a\.jsonl: line 1: text column 'text' holds NoneType"),
    ("a.txt", "text,label\n", r"cannot tell the format"),
])
def test_classification_errors(tmp_path, name, text, message):
    with pytest.raises(classification.ClassificationDataError, match=message):
        classification.read_classification(_write(tmp_path / name, text))


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_classification_write_read_round_trip(tmp_path, ext):
    rows = [("a, \"quoted\" text", "pos"), ("ünïcødé …", "neg")]
    if ext != ".tsv":
        rows.append(("multi\nline", "pos"))
    path = str(tmp_path / ("out" + ext))
    classification.write_classification(path, rows)
    data = classification.read_classification(path)
    assert data.texts == [r[0] for r in rows]
    assert [data.label_names[i] for i in data.labels] == [r[1] for r in rows]
    assert [p.name for p in tmp_path.iterdir()] == ["out" + ext]  # no temp file left behind


def test_tsv_writer_refuses_tabs(tmp_path):
    with pytest.raises(classification.ClassificationDataError, match="TSV cannot carry"):
        classification.write_classification(str(tmp_path / "x.tsv"), [("a\tb", "pos")])
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------- CoNLL

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP B-NP I-PER
"""


def test_conll_2003_columns_docstart_and_blank_lines():
    sentences = conll.parse_conll(CONLL_2003)
    assert sentences == [(["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
                         (["Peter", "Blackburn"], ["B-PER", "I-PER"])]
    assert conll.tag_vocabulary(sentences) == ("O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")


def test_conll_tab_columns_whitespace_only_separator_and_crlf():
    text = "New York\tB-loc\r\nrocks\tO\r\n\t\r\n@user\tO\r\n"
    assert conll.parse_conll(text) == [(["New York", "rocks"], ["B-loc", "O"]), (["@user"], ["O"])]


def test_conll_iob2_violation_is_an_error_and_iob1_is_converted():
    iob1 = "Peter I-PER\nBlackburn I-PER\nvisits O\nBonn I-LOC\nBerlin B-LOC\n"
    with pytest.raises(conll.ConllFormatError, match=r"x\.conll: line 1: 'I-PER' follows 'O'"):
        conll.parse_conll(iob1, source="x.conll")
    assert conll.parse_conll(iob1, scheme="iob1") == [
        (["Peter", "Blackburn", "visits", "Bonn", "Berlin"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"])]
    with pytest.raises(conll.ConllFormatError, match=r"line 2: 'I-LOC' follows 'B-PER'"):
        conll.parse_conll("a B-PER\nb I-LOC\n")


@pytest.mark.parametrize("text,message", [
    ("word\n", r"line 1: expected a token and a tag"),
    ("a O\nb E-PER\n", r"line 2: tag 'E-PER' is not O, B-TYPE or I-TYPE"),
    ("a O\nb PER\n", r"line 2: tag 'PER' is not O"),
    ("a NN O\nb O\n", r"line 2: 2 columns where earlier lines have 3"),
    ("a\t\n", r"line 1: empty token or tag"),
])
def test_conll_malformed_lines(text, message):
    with pytest.raises(conll.ConllFormatError, match=message):
        conll.parse_conll(text)


def test_conll_closed_label_set_and_file_round_trip(tmp_path):
    with pytest.raises(conll.ConllFormatError, match=r"line 1: tag 'B-ORG' is not in the label set"):
        conll.parse_conll("EU B-ORG\n", label_names=["O", "B-PER", "I-PER"])
    sentences = [(["I", "❤", "New", "York", "x\u2028y"], ["O", "O", "B-LOC", "I-LOC", "O"]), (["ok"], ["O"])]
    path = str(tmp_path / "t.conll")
    conll.write_conll(path, sentences)
    assert conll.read_conll(path) == sentences
    with pytest.raises(conll.ConllFormatError, match="cannot be written"):
        conll.write_conll(str(tmp_path / "bad.conll"), [(["a\tb"], ["O"])])
    with pytest.raises(conll.ConllFormatError, match="'I-LOC' follows 'O'"):
        conll.write_conll(str(tmp_path / "bad.conll"), [(["a"], ["I-LOC"])])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.conll"]


# ---------------------------------------------------------------------------------- SQuAD

def _squad(qas, context="The cat sat on the mat.", version=None):
    data = {"data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}
    if version:
        data["version"] = version
    return data


def test_squad_v1_and_v2_parse():
    examples = squad.parse_squad(_squad([
        {"id": "q1", "question": "Who?", "answers": [{"text": "cat", "answer_start": 4}]},
        {"id": "q2", "question": "Where?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "mat", "answer_start": 19}]},
    ], version="v2.0"))
    assert [(e.id, e.is_impossible, [(a.text, a.start, a.end) for a in e.answers]) for e in examples] == [
        ("q1", False, [("cat", 4, 7)]), ("q2", True, [])]
    assert examples[0].context[4:7] == "cat" and examples[0].title == "T"


@pytest.mark.parametrize("qas,message", [
    ([{"id": "q1", "question": "?", "answers": [{"text": "dog", "answer_start": 4}]}],
     r"f\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id q1\)\.answers\[0\]: answer 'dog' is not in "
     r"the context at answer_start=4 \(the context there reads 'cat'\)"),
    ([{"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": "4"}]}],
     r"'answer_start' should be int, got str"),
    ([{"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": -1}]}], r"not in the context"),
    ([{"id": "q1", "question": "?", "answers": []}], r"\(id q1\): no answers"),
    ([{"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": 4}], "is_impossible": True}],
     r"is_impossible is true but the question has answers"),
    ([{"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": 4}]},
      {"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": 4}]}],
     r"qas\[1\] \(id q1\): duplicate question id"),
    ([{"question": "?", "answers": []}], r"qas\[0\]: missing field 'id'"),
])
def test_squad_validation_errors(qas, message):
    with pytest.raises(squad.SquadFormatError, match=message):
        squad.parse_squad(_squad(qas), source="f.json")


def test_squad_file_read_write(tmp_path):
    data = _squad([{"id": "q1", "question": "Who?", "answers": [{"text": "cät", "answer_start": 4}]}],
                  context="The cät sat.")
    path = str(tmp_path / "s.json")
    squad.write_squad_json(data, path)
    assert squad.load_squad_json(path) == data
    assert readers.read_squad(path)[0].answers[0].text == "cät"
    bad = _write(tmp_path / "bad.json", '{"data": [\n  {"title": }\n]}')
    with pytest.raises(squad.SquadFormatError, match=r"bad\.json: line 2 column \d+: invalid JSON"):
        squad.read_squad(bad)
    unlabeled = _squad([{"id": "q1", "question": "Who?", "answers": []}])
    assert squad.parse_squad(unlabeled, require_answers=False)[0].answers == ()
