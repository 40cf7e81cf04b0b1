"""Extractive QA (SQuAD 1.1 / 2.0): windowed features from tokenizer offsets, span loss, decoding.

Inference (predict, evaluate, the exported SavedModel) runs one graph path, `bert_tf.tasks.
squad_graph`: `serving_features` cuts [CLS] question [SEP] context-window [SEP] windows from the
question and context strings (`doc_stride`, `max_query_length`, max-context tokens) and `decode`
picks each question's answer across its windows (n-best starts and ends, max answer length, the
2.0 null score against `null_score_diff_threshold`), returning it with its character offsets.
`score` is the official EM/F1 (`bert_tf.metrics.squad`) of those decoded answers.

Training keeps the numpy windowing of `bert_tf.data.squad_features` (the same windows; tested),
which also maps the answer's characters to its first/last context token (an answer outside a
window, and an impossible 2.0 question, target [CLS] = position 0). The question and the context
are WordPiece-tokenized by the in-graph tokenizer, the context with byte offsets
(`tokenize_with_offsets`) turned into character offsets because SQuAD's `answer_start` counts
characters. Training uses the first gold answer, as google-research/bert does.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow as tf

from bert_tf import metrics, plots
from bert_tf.data import squad_features
from bert_tf.data.squad import SquadExample, SquadFormatError, load_squad_json, parse_squad
from bert_tf.tasks import squad_graph
from bert_tf.tasks.base import TaskDataError, TaskFeatures, soft_cross_entropy


@dataclasses.dataclass
class SquadRecords:
    examples: list          # [SquadExample]
    dataset: dict | None    # the parsed JSON, for the official metric (None for stdin input)
    source: str = "<records>"

    def __len__(self) -> int:
        return len(self.examples)


class SquadTask:
    name = "squad"
    metric = "f1"
    file_suffix = ".json"   # what `bert-tf evaluate` reads stdin as
    lite_serving = False    # windows need ragged tokenization: TFLite holds serve_ids only

    def __init__(self, tokenizer, label_names=(), doc_stride: int = 128, max_query_length: int = 64,
                 max_answer_length: int = 30, n_best_size: int = 20,
                 null_score_diff_threshold: float = 0.0, version_2: bool = False):
        self.tokenizer = tokenizer
        self.label_names = ()
        self.doc_stride, self.max_query_length = int(doc_stride), int(max_query_length)
        self.max_answer_length, self.n_best_size = int(max_answer_length), int(n_best_size)
        self.null_score_diff_threshold = float(null_score_diff_threshold)
        self.version_2 = bool(version_2)

    # ------------------------------------------------------------------ data
    @staticmethod
    def read_labels(path: str, **_) -> tuple:
        return ()

    def read(self, path: str, labeled: bool = True) -> SquadRecords:
        dataset = load_squad_json(path)
        examples = parse_squad(dataset, source=path, require_answers=labeled)
        if metrics.is_squad_v2(dataset):
            self.version_2 = True
        return SquadRecords(examples, dataset, path)

    def records_from_texts(self, lines, source: str = "<stdin>") -> SquadRecords:
        """JSON Lines with "question" and "context" (and optionally "id")."""
        examples = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SquadFormatError(f"{source}: line {number}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict) or not all(isinstance(record.get(k), str)
                                                       for k in ("question", "context")):
                raise SquadFormatError(f"{source}: line {number}: expected an object with string "
                                       "fields 'question' and 'context'")
            examples.append(SquadExample(str(record.get("id", number)), "", record["question"],
                                         record["context"], ()))
        return SquadRecords(examples, None, source)

    def encode(self, records: SquadRecords, training: bool = False) -> TaskFeatures:
        tokenizer = self.tokenizer
        examples = records.examples
        if not examples:
            raise TaskDataError(f"{records.source}: no questions")
        questions = []
        for start in range(0, len(examples), 1024):
            batch = tf.constant([e.question for e in examples[start:start + 1024]])
            questions.extend(tokenizer.tokenize(batch).merge_dims(1, 2).to_list())
        contexts = list(dict.fromkeys(e.context for e in examples))  # unique, in file order
        context_tokens = {}
        for start in range(0, len(contexts), 256):
            batch = contexts[start:start + 256]
            pieces = tokenizer.tokenize_with_offsets(tf.constant(batch))  # [b, (words), (pieces)]
            for c, context in enumerate(batch):
                ids = pieces["token_ids"][c].flat_values.numpy()
                byte_spans = np.stack([pieces["start_offsets"][c].flat_values.numpy(),
                                       pieces["end_offsets"][c].flat_values.numpy()], -1)  # [n, 2]
                spans = squad_features.byte_to_char_offsets(context, byte_spans)
                context_tokens[context] = (ids, spans)
        features = []
        for example, query in zip(examples, questions):
            ids, spans = context_tokens[example.context]
            answer_start = answer_end = None
            if training and example.answers and not example.is_impossible:
                answer_start, answer_end = example.answers[0].start, example.answers[0].end
            try:
                features.extend(squad_features.create_features(
                    example.id, query, ids, spans, answer_start=answer_start, answer_end=answer_end,
                    cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id,
                    max_seq_length=tokenizer.sequence_length, max_query_length=self.max_query_length,
                    doc_stride=self.doc_stride))
            except squad_features.SquadFeatureError as e:
                raise TaskDataError(f"{records.source}: {e}") from None
        stacked = squad_features.stack_features(features)
        inputs = {k: stacked[k] for k in squad_graph.MODEL_INPUTS}
        targets = {"start_positions": stacked["start_positions"],
                   "end_positions": stacked["end_positions"]} if training else {}
        return TaskFeatures(inputs, targets, {
            "example_ids": [f.example_id for f in features], "offsets": stacked["offsets"],
            "token_is_max_context": stacked["token_is_max_context"]})

    # ------------------------------------------------------------------ model
    def build_model(self, encoder):
        from bert_tf.models import BertSpanLabeler
        return BertSpanLabeler(encoder)

    def loss(self, outputs, targets) -> dict:
        """Mean of the start and end position cross entropies (google-research/bert's loss)."""
        def ce(name, positions):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(positions, tf.int32), tf.cast(outputs[name], tf.float32)))
        return {"loss": 0.5 * (ce("start_logits", targets["start_positions"])
                               + ce("end_logits", targets["end_positions"]))}

    # ------------------------------------------------------------------ distillation
    distilled_outputs = ("start_logits", "end_logits")

    @staticmethod
    def distillation_loss(outputs, targets, temperature: float):
        """The teacher's start and end distributions over each window's positions, averaged as
        the hard loss averages them."""
        return 0.5 * sum(soft_cross_entropy(targets[f"teacher_{name}"], outputs[name], temperature)
                         for name in ("start_logits", "end_logits"))

    pseudo_labels = None   # a question without an answer span has no hard target to give
    augment = None         # replacing context words may move or remove the answer span

    # ------------------------------------------------------------------ inference (graph)
    serving_input_names = ("question", "context")

    def serving_features(self, texts: dict) -> tuple:
        """{"question", "context": string [B]} -> (model inputs int32 [W, S], decoding state)."""
        windows = squad_graph.qa_windows(self.tokenizer, texts["question"], texts["context"],
                                         self.doc_stride, self.max_query_length)
        inputs = {name: windows[name] for name in squad_graph.MODEL_INPUTS}
        return inputs, windows   # the decoder reads offsets, max-context flags and the mask

    def decode(self, outputs: dict, state: dict, texts: dict) -> dict:
        """start/end logits [W, S] -> answer [B] string, score [B] float32, answer_start /
        answer_end [B] int64 character offsets (-1 for no answer)."""
        return squad_graph.decode_answers(
            outputs["start_logits"], outputs["end_logits"], state, texts["context"],
            n_best_size=self.n_best_size, max_answer_length=self.max_answer_length,
            version_2=self.version_2, null_score_diff_threshold=self.null_score_diff_threshold)

    # ------------------------------------------------------------------ outputs (host)
    def record_texts(self, records: SquadRecords) -> dict:
        return {"question": [e.question for e in records.examples],
                "context": [e.context for e in records.examples]}

    @staticmethod
    def _answers(decoded) -> list:
        return [a.decode("utf-8") if isinstance(a, bytes) else str(a)
                for a in np.asarray(decoded["answer"]).reshape(-1)]

    def rows(self, records: SquadRecords, decoded: dict) -> list:
        answers = self._answers(decoded)
        if len(answers) != len(records.examples):
            raise TaskDataError(f"{records.source}: {len(records.examples)} questions but "
                                f"{len(answers)} decoded answers")
        score = np.asarray(decoded["score"], np.float64)
        start = np.asarray(decoded["answer_start"], np.int64)
        end = np.asarray(decoded["answer_end"], np.int64)
        return [{"id": e.id, "question": e.question, "answer": answers[i],
                 "score": round(float(score[i]), 6), "answer_start": int(start[i]),
                 "answer_end": int(end[i])} for i, e in enumerate(records.examples)]

    def score(self, records: SquadRecords, decoded: dict) -> dict:
        """Official SQuAD EM/F1 (2.0: with the no-answer rules) of the decoded answers."""
        if records.dataset is None:
            raise TaskDataError(f"{records.source}: scoring needs a SQuAD JSON file with answers")
        answers = self._answers(decoded)
        if len(answers) != len(records.examples):
            raise TaskDataError(f"{records.source}: {len(records.examples)} questions but "
                                f"{len(answers)} decoded answers")
        predictions = {e.id: answer for e, answer in zip(records.examples, answers)}
        return metrics.squad(records.dataset, predictions, version_2=self.version_2)

    @staticmethod
    def attribution_target(model, window: dict):
        """None: `bert-tf explain` attributes one score per input, which span QA (two positions) has not."""
        return None

    @staticmethod
    def marked_spans(answer: dict):
        """("context", [(start, end, "answer")]): the answer `bert-tf explain` marks (none for
        a no-answer prediction)."""
        start, end = int(answer["answer_start"]), int(answer["answer_end"])
        return "context", ([(start, end, "answer")] if answer["answer"] and end > start else [])

    def report(self, records: SquadRecords, decoded: dict, scores: dict, title: str) -> tuple:
        """(the scores and EM/F1 by gold answer length in words; a bar chart of those) for
        `evaluate --report`."""
        predictions = {e.id: a for e, a in zip(records.examples, self._answers(decoded))}
        by_length = metrics.squad_by_answer_length(records.dataset, predictions,
                                                   version_2=self.version_2)
        chart = plots.grouped_bars(
            [f"{row['bin']} ({row['total']})" for row in by_length],
            {"exact match": [row["exact_match"] for row in by_length],
             "F1": [row["f1"] for row in by_length]},
            f"{title}: by gold answer length in words (questions)", "score (0-100)", (0, 105))
        return ({"metrics": scores, "by_answer_length": by_length},
                {"by_answer_length.png": chart})

    def warmup_texts(self) -> dict:
        """A short question and one whose context needs more than one window."""
        sentence = "The old mill stands by the river, where the water runs fast in spring."
        # Every word is at least one piece, so this has more pieces than a whole sequence.
        repeats = self.tokenizer.sequence_length // len(sentence.split()) + 2
        return {"question": ["Who wrote it?", "Where does the old mill stand?"],
                "context": ["It was written by Ada Lovelace in 1843.",
                            " ".join([sentence] * repeats)]}

    def settings(self) -> dict:
        return {"doc_stride": self.doc_stride, "max_query_length": self.max_query_length,
                "max_answer_length": self.max_answer_length, "n_best_size": self.n_best_size,
                "null_score_diff_threshold": self.null_score_diff_threshold,
                "version_2": self.version_2}
