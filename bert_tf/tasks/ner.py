"""Token classification (NER) on CoNLL files: word labels on first word-pieces, entity F1.

Training, evaluation, `bert-tf predict` and the exported SavedModel share ONE inference path, the
graph ops of `bert_tf.tasks.ner_graph` (its docstring states the rules): a record's tokens joined
with " " are the text, the text's words (split on ASCII whitespace) are WordPiece-tokenized one by
one, the pieces are cut into [CLS] pieces [SEP] windows `stride` pieces apart, and each word takes
the tag predicted at its first piece in the window where that piece has the most context. A word
with no piece (it normalizes to nothing) is "O". Entities are IOB2 spans with character offsets.

Training windows are `ner_windows`' windows, with the gold label at EVERY window position that is
a word's first piece (IGNORE_INDEX (-100) at other pieces, [CLS], [SEP] and padding): each window
is a real input the model must tag, and every window that holds a word's first piece is a context
it can be tagged from (as run_squad trains on every window that holds the answer); decoding then
reads each word from its max-context window only.

`score` computes seqeval entity precision/recall/F1 (conlleval rules) from the decoded word tags
against the gold tags, so evaluation scores exactly what is served.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf import metrics, plots
from bert_tf.data.conll import DOCSTART, read_conll, tag_vocabulary
from bert_tf.tasks import ner_graph
from bert_tf.tasks.base import (IGNORE_INDEX, TaskDataError, TaskFeatures,
                                masked_mean_cross_entropy, soft_cross_entropy)

#: texts per call of the traced windowing function while encoding a file
ENCODE_BATCH = 512


@dataclasses.dataclass
class TaggedSentences:
    sentences: list  # [(tokens, tags or None)]
    source: str = "<records>"

    def __len__(self) -> int:
        return len(self.sentences)


class NerTask:
    name = "ner"
    # The loss never reads padding positions: training may run on packed tokens
    # (`bert_tf.tasks.base.packed_forward`).
    trains_packed = True
    metric = "f1"
    file_suffix = ".conll"   # what `bert-tf evaluate` reads stdin as
    lite_serving = False     # windows need ragged tokenization: TFLite holds serve_ids only
    serving_input_names = ("text",)

    def __init__(self, tokenizer, label_names, scheme: str = "iob2", stride: int | None = None):
        self.tokenizer = tokenizer
        self.label_names = tuple(label_names)
        self.scheme = scheme
        if "O" not in self.label_names:
            raise TaskDataError(f"the NER label set must contain 'O', got {list(self.label_names)}")
        self.stride = ner_graph.check_stride(stride, tokenizer.sequence_length)
        self._label_ids = {name: i for i, name in enumerate(self.label_names)}
        self._traced_windows = None

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
            with fileio.open(path, "rb") as f:
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
        """Raw text for prediction: one sentence per line, words split by `ner_graph.split_words`
        (the graph's rule); lines without words are skipped."""
        split = (ner_graph.split_words(line) for line in lines)
        return TaggedSentences([(words, None) for words in split if words], source)

    def record_texts(self, records: TaggedSentences) -> dict:
        """{"text": each sentence's tokens joined with " "}, which the graph splits back into the
        same tokens; a token that is empty or holds ASCII whitespace is a TaskDataError."""
        texts = []
        for i, (tokens, _) in enumerate(records.sentences):
            for token in tokens:
                if ner_graph.split_words(token) != [token]:
                    raise TaskDataError(
                        f"{records.source}: sentence {i + 1}: token {token!r} is empty or contains "
                        f"whitespace ({ner_graph.WORD_SEPARATORS!r}); NER words are the "
                        "whitespace-separated parts of a text")
            texts.append(" ".join(tokens))
        return {"text": texts}

    def encode(self, records: TaggedSentences, training: bool = False) -> TaskFeatures:
        """The windows `serving_features` cuts from `record_texts` (W >= n rows).

        inputs int32 [W, seq]; targets `labels` [W, seq] when every record has tags (the word's
        gold label id at each of its first pieces, in every window; IGNORE_INDEX elsewhere);
        extras `row_index` [W], `first_word` [W, seq], `max_context` [W, seq] (see `ner_windows`).
        `training` changes nothing: evaluation windows are training windows."""
        del training
        texts = self.record_texts(records)["text"]
        names = ner_graph.MODEL_INPUT_NAMES + ("row_index", "first_word", "max_context",
                                               "word_count")
        parts = {name: [] for name in names}
        for start in range(0, max(len(texts), 1), ENCODE_BATCH):  # no records: one empty batch
            windows = self._windows(tf.constant(texts[start:start + ENCODE_BATCH], tf.string))
            for name in names:
                parts[name].append(windows[name].numpy())
            parts["row_index"][-1] = parts["row_index"][-1] + start
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        lengths = [len(tokens) for tokens, _ in records.sentences]
        if not np.array_equal(arrays["word_count"], lengths):  # record_texts guarantees this
            raise AssertionError("NER windows split a record into other words than its tokens")
        inputs = {name: arrays[name] for name in ner_graph.MODEL_INPUT_NAMES}
        extras = {name: arrays[name] for name in ("row_index", "first_word", "max_context")}
        labeled = bool(records.sentences) and all(tags is not None for _, tags in records.sentences)
        if not labeled:
            return TaskFeatures(inputs, {}, extras)
        gold = np.full([len(lengths), max(lengths, default=0) + 1], IGNORE_INDEX, np.int32)
        for i, (tokens, tags) in enumerate(records.sentences):
            if len(tags) != len(tokens):
                raise TaskDataError(f"{records.source}: sentence {i + 1}: {len(tokens)} tokens but "
                                    f"{len(tags)} tags")
            for w, tag in enumerate(tags):
                if tag not in self._label_ids:
                    raise TaskDataError(f"{records.source}: sentence {i + 1}: tag {tag!r} is "
                                        f"not one of the labels {list(self.label_names)}")
                gold[i, w] = self._label_ids[tag]
        # first_word -1 reads the last column, which is IGNORE_INDEX for every record.
        labels = gold[extras["row_index"][:, np.newaxis], extras["first_word"]]
        return TaskFeatures(inputs, {"labels": labels}, extras)

    def _windows(self, text):
        if self._traced_windows is None:
            self._traced_windows = tf.function(
                lambda t: ner_graph.ner_windows(self.tokenizer, t, self.stride),
                input_signature=[tf.TensorSpec([None], tf.string)])
        return self._traced_windows(text)

    # ------------------------------------------------------------------ inference path (graph)
    def serving_features(self, texts: dict) -> tuple:
        """{"text": string [B]} -> (model inputs int32 [W, seq], decoding state); `ner_windows`."""
        windows = ner_graph.ner_windows(self.tokenizer, texts["text"], self.stride)
        inputs = {name: windows.pop(name) for name in ner_graph.MODEL_INPUT_NAMES}
        return inputs, windows

    def decode(self, outputs: dict, state: dict, texts: dict) -> dict:
        """Model outputs {"logits": [W, seq, labels]} -> `ner_graph.decode_entities` [B, ...]."""
        return ner_graph.decode_entities(outputs["logits"], state, texts["text"], self.label_names)

    # ------------------------------------------------------------------ model
    def build_model(self, encoder):
        from bert_tf.models import BertTokenClassifier
        return BertTokenClassifier(encoder, len(self.label_names))

    @staticmethod
    def loss(outputs, targets) -> dict:
        return {"loss": masked_mean_cross_entropy(targets["labels"], outputs["logits"])}

    # ------------------------------------------------------------------ distillation
    distilled_outputs = ("logits",)

    @staticmethod
    def distillation_loss(outputs, targets, temperature: float):
        """The teacher's tag distribution on the positions the hard loss scores (each word's
        first piece; not continuation pieces, special tokens or padding)."""
        weights = tf.cast(targets["labels"], tf.int32) != IGNORE_INDEX                # [b, s]
        return soft_cross_entropy(targets["teacher_logits"], outputs["logits"], temperature,
                                  weights)

    @staticmethod
    def pseudo_labels(teacher_outputs: dict, extras: dict):
        """Hard tags for unlabeled sentences: the teacher's argmax at each word's first piece
        (`first_word` >= 0, the positions gold tags take in labeled windows), IGNORE_INDEX
        elsewhere; int32 [W, seq]."""
        tags = np.argmax(teacher_outputs["logits"], axis=-1)                       # [W, seq]
        return np.where(extras["first_word"] >= 0, tags, IGNORE_INDEX).astype(np.int32)

    @staticmethod
    def augment(records: TaggedSentences, copies: int, rate: float,
                seed: int) -> TaggedSentences:
        """The training sentences and `copies` label-wise token replacement versions of each
        (`bert_tf.data.augmentation`), tags kept: `bert-tf distill --augment`."""
        from bert_tf.data.augmentation import label_wise_replacement
        new = label_wise_replacement(records.sentences, copies, rate, seed)
        return TaggedSentences(list(records.sentences) + new, records.source)

    # ------------------------------------------------------------------ outputs (host)
    @staticmethod
    def _word_tags(records, decoded: dict) -> list:
        """Decoded word tags per record, one per token (checks the decoder saw the same words)."""
        tags, counts = decoded["word_tags"], decoded["word_count"]
        if len(counts) != len(records.sentences):
            raise TaskDataError(f"{records.source}: {len(records.sentences)} sentences but "
                                f"{len(counts)} decoded rows")
        out = []
        for i, (tokens, _) in enumerate(records.sentences):
            if int(counts[i]) != len(tokens):
                raise TaskDataError(f"{records.source}: sentence {i + 1}: {len(tokens)} tokens but "
                                    f"{int(counts[i])} decoded words")
            out.append([_text(tag) for tag in tags[i, :len(tokens)]])
        return out

    def score(self, records, decoded: dict) -> dict:
        """seqeval entity precision/recall/F1 of the decoded word tags against the gold tags."""
        if any(tags is None for _, tags in records.sentences):
            raise TaskDataError(f"{records.source}: scoring needs tagged sentences")
        gold = [tags for _, tags in records.sentences]
        return metrics.entity_metrics(gold, self._word_tags(records, decoded))

    @staticmethod
    def attribution_target(model, window: dict):
        """None: `bert-tf explain` attributes one score per input, which NER (a label per word) has not."""
        return None

    @staticmethod
    def marked_spans(answer: dict):
        """(input name, [(start, end, label)] character spans): the entities `bert-tf explain`
        marks, from one input's decoded answer."""
        count = int(answer["entity_count"])
        return "text", [(int(s), int(e), str(label)) for s, e, label in zip(
            answer["entity_starts"][:count], answer["entity_ends"][:count],
            answer["entity_labels"][:count])]

    def report(self, records, decoded: dict, scores: dict, title: str) -> tuple:
        """(the scores with per-entity-type precision/recall/F1; a bar chart of them) for
        `evaluate --report`."""
        types = sorted(scores["per_type"])
        chart = plots.grouped_bars(
            [f"{t} ({scores['per_type'][t]['support']})" for t in types],
            {k: [scores["per_type"][t][k] for t in types] for k in ("precision", "recall", "f1")},
            f"{title}: entity F1 {scores['f1']:.4f}; by type (gold entities)", "score",
            (0.0, 1.05))
        return {"metrics": scores}, {"per_entity_type.png": chart}

    def rows(self, records, decoded: dict) -> list:
        """One prediction per sentence: tokens, their tags, and the entities with character offsets
        into the tokens joined by " " (the served text)."""
        out = []
        for i, tags in enumerate(self._word_tags(records, decoded)):
            entities = [{"label": _text(decoded["entity_labels"][i, e]),
                         "text": _text(decoded["entity_texts"][i, e]),
                         "start": int(decoded["entity_starts"][i, e]),
                         "end": int(decoded["entity_ends"][i, e])}
                        for e in range(int(decoded["entity_count"][i]))]
            out.append({"tokens": list(records.sentences[i][0]), "tags": tags,
                        "entities": entities})
        return out

    def warmup_texts(self) -> dict:
        """A short sentence and one of `sequence_length - 1` words, more pieces than one window
        holds (every non-empty ASCII word has at least one piece)."""
        long_text = " ".join(["word"] * (self.tokenizer.sequence_length - 1))
        return {"text": ["John Smith lives in New York .", long_text]}

    def settings(self) -> dict:
        return {"scheme": self.scheme, "stride": self.stride}


def _text(value) -> str:
    """A decoded string element (bytes from TensorFlow) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
