"""Extractive QA (SQuAD 1.1 / 2.0): windowed features from tokenizer offsets, span loss, decoding.

The question and the context are WordPiece-tokenized by the in-graph tokenizer; the context with
byte offsets (`tokenize_with_offsets`), turned here into character offsets because SQuAD's
`answer_start` counts characters. `bert_tf.data.squad_features` then cuts
[CLS] question [SEP] context-window [SEP] features with `doc_stride` and `max_query_length` and maps
the answer's characters to its first/last context token (an answer outside a window, and an
impossible 2.0 question, target [CLS] = position 0). Training uses the first gold answer, as
google-research/bert does. Predictions are decoded across windows by
`bert_tf.data.squad_postprocess` (n-best, max-context starts, max answer length, the 2.0 null score
against `null_score_diff_threshold`) and scored by the official EM/F1 in `bert_tf.metrics.squad`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow as tf

from bert_tf import metrics
from bert_tf.data import squad_features, squad_postprocess
from bert_tf.data.squad import SquadExample, SquadFormatError, load_squad_json, parse_squad
from bert_tf.tasks.base import TaskDataError, TaskFeatures


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
        inputs = {k: stacked[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
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

    # ------------------------------------------------------------------ outputs
    def decode(self, records, features: TaskFeatures, outputs: dict):
        contexts = {e.id: e.context for e in records.examples}
        return squad_postprocess.decode_spans(
            contexts, features.extras["example_ids"], features.extras["offsets"],
            outputs["start_logits"], outputs["end_logits"], features.extras["token_is_max_context"],
            n_best_size=self.n_best_size, max_answer_length=self.max_answer_length,
            version_2_with_negative=self.version_2,
            null_score_diff_threshold=self.null_score_diff_threshold)

    def score(self, records, features, outputs) -> dict:
        if records.dataset is None:
            raise TaskDataError(f"{records.source}: scoring needs a SQuAD JSON file with answers")
        decoded = self.decode(records, features, outputs)
        return metrics.squad(records.dataset, decoded.predictions, version_2=self.version_2)

    def predictions(self, records, features, outputs) -> list:
        decoded = self.decode(records, features, outputs)
        rows = []
        for example in records.examples:
            best = decoded.nbest[example.id][0]
            rows.append({"id": example.id, "question": example.question,
                         "answer": decoded.predictions[example.id],
                         "probability": round(best["probability"], 6)})
        return rows

    def settings(self) -> dict:
        return {"doc_stride": self.doc_stride, "max_query_length": self.max_query_length,
                "max_answer_length": self.max_answer_length, "n_best_size": self.n_best_size,
                "null_score_diff_threshold": self.null_score_diff_threshold,
                "version_2": self.version_2}
