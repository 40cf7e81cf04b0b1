"""Token classification (NER) on CoNLL files: word labels on first word-pieces, entity F1.

Each CoNLL token (a "word") is WordPiece-tokenized on its own with the in-graph tokenizer; its label
goes to its first piece and every other piece gets IGNORE_INDEX (-100), so the loss and the metric
see exactly one prediction per word, as in the BERT paper's NER recipe. Sequences are
[CLS] pieces [SEP] [PAD]..., with the pieces cut at `max_length - 2`.

Scoring works on words: the predicted tag of a word is the argmax at its first piece; a word that
has no piece in the window (cut off by `max_length`, or a word that normalizes to nothing) is
predicted "O", so gold entities there count as misses instead of silently leaving the
denominator. Entity precision/recall/F1 are seqeval's (conlleval rules).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bert_tf import metrics
from bert_tf.data.conll import DOCSTART, read_conll, tag_vocabulary
from bert_tf.tasks.base import (IGNORE_INDEX, TaskDataError, TaskFeatures, masked_mean_cross_entropy,
                                word_pieces)


@dataclasses.dataclass
class TaggedSentences:
    sentences: list  # [(tokens, tags or None)]
    source: str = "<records>"

    def __len__(self) -> int:
        return len(self.sentences)


class NerTask:
    name = "ner"
    metric = "f1"

    def __init__(self, tokenizer, label_names, scheme: str = "iob2"):
        self.tokenizer = tokenizer
        self.label_names = tuple(label_names)
        self.scheme = scheme
        if "O" not in self.label_names:
            raise TaskDataError(f"the NER label set must contain 'O', got {list(self.label_names)}")
        self._label_ids = {name: i for i, name in enumerate(self.label_names)}

    # ------------------------------------------------------------------ data
    @staticmethod
    def read_labels(path: str, scheme: str = "iob2", **_) -> tuple:
        return tag_vocabulary(read_conll(path, scheme=scheme))

    def read(self, path: str, labeled: bool = True) -> TaggedSentences:
        if not labeled:
            return self._read_tokens(path)
        return TaggedSentences(read_conll(path, scheme=self.scheme, label_names=self.label_names), path)

    @staticmethod
    def _read_tokens(path: str) -> TaggedSentences:
        """A CoNLL file for prediction: the first column is the token, other columns (tags) are
        ignored, blank lines end sentences, -DOCSTART- lines are skipped."""
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TaskDataError(f"{path}: not UTF-8 ({e})") from None
        sentences, tokens = [], []
        for line in text.split("\n") + [""]:
            fields = line.rstrip("\r").split("\t") if "\t" in line else line.split()
            token = fields[0].strip() if fields else ""
            if token == DOCSTART or not token:
                if tokens:
                    sentences.append((tokens, None))
                tokens = []
                continue
            tokens.append(token)
        return TaggedSentences(sentences, path)

    def records_from_texts(self, lines, source: str = "<stdin>") -> TaggedSentences:
        """Raw text for prediction: one sentence per line, tokens split on whitespace."""
        return TaggedSentences([(line.split(), None) for line in lines if line.strip()], source)

    def encode(self, records: TaggedSentences, training: bool = False) -> TaskFeatures:
        """inputs [n, seq]; targets `labels` [n, seq] (IGNORE_INDEX off first pieces); extras
        `word_positions` [n, max words] (position of each word's first piece, -1 if none)."""
        seq = self.tokenizer.sequence_length
        words = [w for tokens, _ in records.sentences for w in tokens]
        pieces = iter(word_pieces(self.tokenizer, words))
        n = len(records.sentences)
        max_words = max((len(t) for t, _ in records.sentences), default=1)
        input_ids = np.full([n, seq], self.tokenizer.pad_id, np.int32)
        attention_mask = np.zeros([n, seq], np.int32)
        labels = np.full([n, seq], IGNORE_INDEX, np.int32)
        word_positions = np.full([n, max_words], -1, np.int32)
        labeled = all(tags is not None for _, tags in records.sentences)
        for i, (tokens, tags) in enumerate(records.sentences):
            ids = [self.tokenizer.cls_id]
            for w, token in enumerate(tokens):
                word = next(pieces)
                if not word or len(ids) >= seq - 1:
                    continue  # no room left (or no piece): scored as "O"
                word = word[:seq - 1 - len(ids)]
                word_positions[i, w] = len(ids)
                if labeled:
                    if tags[w] not in self._label_ids:
                        raise TaskDataError(f"{records.source}: sentence {i + 1}: tag {tags[w]!r} is "
                                            f"not one of the labels {list(self.label_names)}")
                    labels[i, len(ids)] = self._label_ids[tags[w]]
                ids.extend(word)
            ids.append(self.tokenizer.sep_id)
            input_ids[i, :len(ids)] = ids
            attention_mask[i, :len(ids)] = 1
        inputs = {"input_ids": input_ids, "token_type_ids": np.zeros_like(input_ids),
                  "attention_mask": attention_mask}
        return TaskFeatures(inputs, {"labels": labels} if labeled else {},
                            {"word_positions": word_positions})

    # ------------------------------------------------------------------ model
    def build_model(self, encoder):
        from bert_tf.models import BertTokenClassifier
        return BertTokenClassifier(encoder, len(self.label_names))

    @staticmethod
    def loss(outputs, targets) -> dict:
        return {"loss": masked_mean_cross_entropy(targets["labels"], outputs["logits"])}

    # ------------------------------------------------------------------ outputs
    def word_tags(self, records, features: TaskFeatures, outputs: dict) -> list:
        """Predicted tags per sentence, one per word."""
        piece_labels = outputs["logits"].argmax(-1)  # [n, seq]
        out = []
        for i, (tokens, _) in enumerate(records.sentences):
            positions = features.extras["word_positions"][i, :len(tokens)]
            out.append([self.label_names[piece_labels[i, p]] if p >= 0 else "O" for p in positions])
        return out

    def score(self, records, features, outputs) -> dict:
        gold = [tags for _, tags in records.sentences]
        return metrics.entity_metrics(gold, self.word_tags(records, features, outputs))

    def predictions(self, records, features, outputs) -> list:
        return [{"tokens": tokens, "tags": tags}
                for (tokens, _), tags in zip(records.sentences, self.word_tags(records, features, outputs))]

    def settings(self) -> dict:
        return {"scheme": self.scheme}

