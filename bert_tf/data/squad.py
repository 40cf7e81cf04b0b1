"""SQuAD 1.1 / 2.0 JSON: parse and validate into flat question examples.

The file layout is `{"version": ..., "data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}`. Every answer must sit in
its context exactly where `answer_start` says (a character offset); a file where it does not is
reported with the record's JSON path and id rather than skipped, because a silently dropped answer
changes both training and the evaluation denominator.
"""

from __future__ import annotations

import dataclasses
import json

from bert_tf import fileio
from bert_tf.config import write_text_atomic


class SquadFormatError(ValueError):
    """A SQuAD file or dict does not have the documented structure, or an answer is not in context."""


@dataclasses.dataclass(frozen=True)
class SquadAnswer:
    text: str
    start: int  # character offset into the context

    @property
    def end(self) -> int:
        """Exclusive end character offset."""
        return self.start + len(self.text)


@dataclasses.dataclass(frozen=True)
class SquadExample:
    id: str
    title: str
    question: str
    context: str
    answers: tuple  # of SquadAnswer; empty for an impossible (2.0) or unlabeled question
    is_impossible: bool = False


def _fail(source: str, where: str, message: str):
    raise SquadFormatError(f"{source}: {where}: {message}")


def _get(record, key: str, kind, source: str, where: str):
    if not isinstance(record, dict):
        _fail(source, where, f"expected a JSON object, got {type(record).__name__}")
    if key not in record:
        _fail(source, where, f"missing field {key!r}")
    value = record[key]
    # bool is an int subclass in Python; a true/false answer_start is still malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        _fail(source, where, f"field {key!r} should be {kind.__name__}, got {type(value).__name__}")
    return value


def parse_squad(dataset, source: str = "<squad>", require_answers: bool = True) -> list:
    """Returns the dataset's questions as `SquadExample`s, in file order, after validating them.

    `dataset` is the parsed JSON (dict with "data"). With `require_answers=False` (prediction-only
    input) answerable questions may come without answers; answers that are given are still checked.
    Version 2.0 (`is_impossible` present): an impossible question must have no answers.
    """
    articles = _get(dataset, "data", list, source, "top level")
    examples, seen = [], {}
    for a, article in enumerate(articles):
        where_article = f"data[{a}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        paragraphs = _get(article, "paragraphs", list, source, where_article)
        for p, paragraph in enumerate(paragraphs):
            where_paragraph = f"{where_article}.paragraphs[{p}]"
            context = _get(paragraph, "context", str, source, where_paragraph)
            qas = _get(paragraph, "qas", list, source, where_paragraph)
            for q, qa in enumerate(qas):
                where = f"{where_paragraph}.qas[{q}]"
                qid = _get(qa, "id", str, source, where)
                where = f"{where} (id {qid})"
                if qid in seen:
                    _fail(source, where, f"duplicate question id, first used at {seen[qid]}")
                seen[qid] = where
                question = _get(qa, "question", str, source, where)
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    _fail(source, where, f"'is_impossible' should be true/false, got {impossible!r}")
                raw_answers = qa.get("answers", [])
                if not isinstance(raw_answers, list):
                    _fail(source, where, "'answers' should be a list")
                answers = []
                for n, raw in enumerate(raw_answers):
                    where_answer = f"{where}.answers[{n}]"
                    text = _get(raw, "text", str, source, where_answer)
                    start = _get(raw, "answer_start", int, source, where_answer)
                    if not text:
                        _fail(source, where_answer, "empty answer text")
                    found = context[start:start + len(text)] if start >= 0 else None
                    if found != text:
                        _fail(source, where_answer,
                              f"answer {text!r} is not in the context at answer_start={start} "
                              f"(the context there reads {found!r})")
                    answers.append(SquadAnswer(text, start))
                if impossible and answers:
                    _fail(source, where, "is_impossible is true but the question has answers")
                if not impossible and not answers and require_answers:
                    _fail(source, where, "no answers (an answerable question needs at least one; "
                                         "SQuAD 2.0 marks unanswerable ones with is_impossible)")
                examples.append(SquadExample(qid, title, question, context, tuple(answers),
                                             impossible))
    return examples


def load_squad_json(path: str) -> dict:
    """Reads a SQuAD JSON file (UTF-8) and returns the parsed dict, after `parse_squad` validation."""
    try:
        with fileio.open(path, "rb") as f:
            dataset = json.loads(f.read().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise SquadFormatError(f"{path}: not UTF-8 ({e})") from None
    except json.JSONDecodeError as e:
        raise SquadFormatError(f"{path}: line {e.lineno} column {e.colno}: invalid JSON ({e.msg})") from None
    parse_squad(dataset, source=path, require_answers=False)
    return dataset


def read_squad(path: str, require_answers: bool = True) -> list:
    """`parse_squad` of a JSON file."""
    return parse_squad(load_squad_json(path), source=path, require_answers=require_answers)


def write_squad_json(dataset: dict, path: str) -> None:
    """Writes a SQuAD dict as UTF-8 JSON, atomically (temp file, then rename)."""
    parse_squad(dataset, source=path, require_answers=False)
    write_text_atomic(path, json.dumps(dataset, ensure_ascii=False, indent=1) + "\n")
