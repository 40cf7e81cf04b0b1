"""Sentence embeddings: texts → unit vectors; trained on (anchor, positive[, negative]) pairs.

The model is a `BertSentenceEncoder`. Training uses in-batch negatives (sentence-transformers'
MultipleNegativesRankingLoss): each anchor's positive must score above every other example's
positive (and every hard negative) in the batch, scores being cosine similarities times `scale`
(20, as sentence-transformers uses), under a softmax cross entropy. A candidate whose text is the
same as the anchor's own positive is not counted as a negative (duplicates in a batch would
otherwise teach the model to push a text away from itself). Under a multi-replica strategy (or
gradient accumulation) each replica's (micro-)batch is its own pool of negatives, as in
sentence-transformers without `gather_across_devices`.

Evaluation is retrieval over held-out pairs: every anchor is a query, every positive (and hard
negative) of the file a candidate; recall@1 (the selection metric), recall@10 and MRR@10 say
where the anchor's own positive ranks by cosine.

Inference is one text per row: [CLS] text [SEP] → `embeddings` [b, d]; predict rows and the
SavedModel's `serving_default` give those vectors.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bert_tf import plots
from bert_tf.data.text_pairs import TextPairs, read_pairs, read_texts
from bert_tf.tasks.base import INPUT_NAMES, TaskDataError, TaskFeatures, tokenize_texts

DEFAULT_SCALE = 20.0


class EmbedTask:
    name = "embed"
    metric = "recall_at_1"
    file_suffix = ".jsonl"   # what `bert-tf evaluate` reads stdin as (pairs)
    lite_serving = True      # tokenizer, one row per text, no decoding: all of it fits TFLite

    def __init__(self, tokenizer, label_names=(), anchor_column: str = "anchor",
                 positive_column: str = "positive", negative_column: str = "negative",
                 pooling: str = "mean", scale: float = DEFAULT_SCALE):
        from bert_tf.weights.sentence_transformers import POOLING_MODES
        if tuple(label_names):
            raise TaskDataError(f"sentence embeddings have no labels, got {list(label_names)}")
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.tokenizer = tokenizer
        self.label_names = ()
        self.anchor_column, self.positive_column = anchor_column, positive_column
        self.negative_column = negative_column
        self.pooling, self.scale = pooling, float(scale)

    # ------------------------------------------------------------------ data
    @staticmethod
    def read_labels(path: str, **_) -> tuple:
        return ()

    def read(self, path: str, labeled: bool = True) -> TextPairs:
        """Pairs to train or score on; with `labeled=False` texts to embed (`read_texts`)."""
        if labeled:
            return read_pairs(path, self.anchor_column, self.positive_column,
                              self.negative_column)
        return read_texts(path)

    def records_from_texts(self, texts) -> TextPairs:
        """Texts to embed, one per entry; an empty text is kept (it embeds [CLS] [SEP])."""
        texts = [t.rstrip("\r") for t in texts]
        return TextPairs(texts, None, None, list(range(1, len(texts) + 1)))

    def encode(self, records: TextPairs, training: bool = False) -> TaskFeatures:
        """Labeled: inputs int32 [n, k, s] (k = 2, or 3 with hard negatives: anchor, positive,
        negative) and `positive_group` [n], the index of the first example whose positive is the
        same text (the loss does not use such a twin as a negative). Unlabeled: [n, s]."""
        if not records.labeled:
            return TaskFeatures(tokenize_texts(self.tokenizer, records.anchors), {})
        columns = [records.anchors, records.positives] + \
            ([records.negatives] if records.negatives is not None else [])
        parts = [tokenize_texts(self.tokenizer, texts) for texts in columns]
        inputs = {name: np.stack([p[name] for p in parts], axis=1) for name in INPUT_NAMES}
        first = {}
        groups = np.asarray([first.setdefault(text, i) for i, text in enumerate(records.positives)],
                            np.int32)
        return TaskFeatures(inputs, {"positive_group": groups})

    # ------------------------------------------------------------------ model
    def build_model(self, encoder):
        from bert_tf.models import BertSentenceEncoder
        return BertSentenceEncoder(encoder, pooling=self.pooling, normalize=True)

    # Distillation (`bert-tf distill`) learns a task head's outputs; an embedding model has none.
    distilled_outputs = ()
    distillation_loss = pseudo_labels = augment = None

    def loss(self, outputs, targets) -> dict:
        """In-batch negatives over a batch of b examples of k texts each.

        embeddings [b, k, d] → anchors [b, d], candidates [(k-1) b, d] (all positives, then all
        negatives, as sentence-transformers orders them); scores = scale · cos [b, (k-1) b];
        the label of anchor i is candidate i."""
        embeddings = tf.cast(outputs["embeddings"], tf.float32)
        embeddings = tf.math.l2_normalize(embeddings, axis=-1, epsilon=1e-24)
        anchors = embeddings[:, 0]                                                 # [b, d]
        depth = tf.shape(embeddings)[-1]
        candidates = tf.reshape(tf.transpose(embeddings[:, 1:], [1, 0, 2]), [-1, depth])
        scores = self.scale * tf.matmul(anchors, candidates, transpose_b=True)     # [b, (k-1)b]
        batch = tf.shape(anchors)[0]
        groups = tf.cast(targets["positive_group"], tf.int32)                      # [b]
        twin = tf.logical_and(tf.equal(groups[:, None], groups[None, :]),
                              tf.logical_not(tf.eye(batch, dtype=tf.bool)))        # [b, b]
        twin = tf.pad(twin, [[0, 0], [0, tf.shape(scores)[1] - batch]])
        scores = tf.where(twin, tf.fill(tf.shape(scores), -1e9), scores)
        labels = tf.range(batch)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, scores))
        correct = tf.equal(tf.argmax(scores, axis=-1, output_type=tf.int32), labels)
        return {"loss": loss, "accuracy": tf.reduce_mean(tf.cast(correct, tf.float32))}

    # ------------------------------------------------------------------ inference (graph)
    serving_input_names = ("text",)

    def record_texts(self, records: TextPairs) -> dict:
        """The texts embedded for `records`: the texts themselves, or for pairs the anchors, then
        the positives, then the negatives (what `score` reads back in that order)."""
        texts = list(records.anchors)
        if records.labeled:
            texts += list(records.positives) + list(records.negatives or [])
        return {"text": texts}

    def serving_features(self, texts: dict):
        features = self.tokenizer(texts["text"])
        return {name: features[name] for name in INPUT_NAMES}, {}

    def decode(self, outputs: dict, state: dict, texts: dict) -> dict:
        return {"embeddings": tf.cast(outputs["embeddings"], tf.float32)}

    def warmup_texts(self) -> dict:
        return {"text": ["A gripping, beautifully acted film.", "How tall is Mount Everest?"]}

    # ------------------------------------------------------------------ outputs (host)
    def score(self, records: TextPairs, decoded: dict) -> dict:
        return retrieval_metrics(decoded["embeddings"], len(records), records.positives)

    @staticmethod
    def attribution_target(model, window: dict):
        """None: `bert-tf explain` attributes one score per input, which an embedding (a vector) has not."""
        return None

    @staticmethod
    def marked_spans(answer: dict):
        """None: an embedding marks no spans of its input (`bert-tf explain`)."""
        return None

    def report(self, records: TextPairs, decoded: dict, scores: dict, title: str) -> tuple:
        """(the scores and recall@k for k = 1..10; its curve) for `evaluate --report`."""
        ks = tuple(range(1, 11))
        curve = retrieval_metrics(decoded["embeddings"], len(records), records.positives, ks)
        recall = [curve[f"recall_at_{k}"] for k in ks]
        report = {"metrics": scores,
                  "recall_at_k": {str(k): r for k, r in zip(ks, recall)}}
        return report, {"recall_at_k.png": plots.line_chart(
            list(ks), recall, f"{title}: {curve['queries']} queries, {curve['candidates']} "
                              f"candidates", "k", "recall@k", (0.0, 1.02))}

    def rows(self, records: TextPairs, decoded: dict) -> list:
        return [{"text": text, "embedding": [round(float(x), 7) for x in vector]}
                for text, vector in zip(records.anchors, decoded["embeddings"])]

    def settings(self) -> dict:
        return {"anchor_column": self.anchor_column, "positive_column": self.positive_column,
                "negative_column": self.negative_column, "pooling": self.pooling,
                "scale": self.scale}


def retrieval_metrics(embeddings, num_queries: int, positives=None, ks=(1, 10)) -> dict:
    """Retrieval scores of queries against candidates by cosine.

    embeddings [n + m, d]: the n queries, then m ≥ n candidates; query i's answer is candidate i
    (and any other candidate among the first n whose `positives` text is the same). Returns
    recall@k for each k (the share of queries whose answer ranks in the top k), mrr@10 and
    the number of queries and candidates."""
    vectors = np.asarray(embeddings, np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    queries, candidates = vectors[:num_queries], vectors[num_queries:]
    if len(candidates) < num_queries or num_queries == 0:
        raise ValueError(f"retrieval needs at least one query and a candidate per query; got "
                         f"{num_queries} queries and {len(candidates)} candidates")
    similarity = queries @ candidates.T                                              # [n, m]
    correct = np.zeros_like(similarity, dtype=bool)
    correct[np.arange(num_queries), np.arange(num_queries)] = True
    if positives is not None:
        texts = np.asarray(positives, dtype=object)
        correct[:, :num_queries] |= texts[:, None] == texts[None, :]
    # Rank of the best-scoring correct candidate: 1 + the candidates that score strictly higher.
    best = np.where(correct, similarity, -np.inf).max(axis=1)                        # [n]
    rank = 1 + (np.where(correct, -np.inf, similarity) > best[:, None]).sum(axis=1)  # [n]
    scores = {f"recall_at_{k}": float(np.mean(rank <= k)) for k in ks}
    scores["mrr_at_10"] = float(np.mean(np.where(rank <= 10, 1.0 / rank, 0.0)))
    scores["queries"], scores["candidates"] = int(num_queries), int(len(candidates))
    return scores
