"""What every fine-tuning task provides, and the pieces they share (batched tokenization, batched
prediction, the padded-feature container).

A task turns reader records into `TaskFeatures` (numpy model inputs + training targets) and defines
the loss on the model's outputs; its one inference path (raw texts → features → model → answers,
in graph ops) is described in `bert_tf.tasks.inference`, and its predictions and metrics are built
from that path's answers only. Features are built with the in-graph `BertTokenizer` run on batches of
strings; packing that needs per-word or per-character bookkeeping (NER labels, SQuAD windows) is done
in numpy on the tokenizer's ragged output and offsets.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

# The model input names every task feeds (int32 [batch, seq]), defined once with the encoder.
from bert_tf.models.encoder import INPUT_NAMES  # noqa: F401

#: label id that the loss and the metrics ignore (continuation word-pieces, special tokens, padding)
IGNORE_INDEX = -100


class TaskDataError(ValueError):
    """Task inputs that cannot be turned into features (the message names the file and record)."""


@dataclasses.dataclass
class TaskFeatures:
    inputs: dict    # name -> int32 [n, seq]
    targets: dict   # name -> int array [n, ...]; empty when the records have no labels
    extras: dict = dataclasses.field(default_factory=dict)  # decoding-only data, per feature

    def __len__(self) -> int:
        return int(self.inputs["input_ids"].shape[0])


def tokenize_texts(tokenizer, texts, pairs=None, batch_size: int = 512) -> dict:
    """Packs texts (or text pairs) with the in-graph tokenizer → dict of int32 numpy [n, seq]."""
    out = {name: [] for name in INPUT_NAMES}
    for start in range(0, len(texts), batch_size):
        first = tf.constant(list(texts[start:start + batch_size]))
        batch = tokenizer(first) if pairs is None else \
            tokenizer((first, tf.constant(list(pairs[start:start + batch_size]))))
        for name in INPUT_NAMES:
            out[name].append(np.asarray(batch[name], np.int32))
    return {name: np.concatenate(parts, 0) for name, parts in out.items()}


def word_pieces(tokenizer, words, batch_size: int = 4096) -> list:
    """The WordPiece ids of each given word, on its own (a word BERT's pre-tokenizer splits further,
    like "@user", gives the pieces of all its parts): list of int lists, [] for a word that
    normalizes to nothing (only control characters or accents)."""
    pieces = []
    for start in range(0, len(words), batch_size):
        ragged = tokenizer.tokenize(tf.constant(list(words[start:start + batch_size])))  # [b, (w), (p)]
        pieces.extend(ragged.merge_dims(1, 2).to_list())
    return pieces


def train_dataset(features: TaskFeatures, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless, seeded, reshuffled-every-epoch global batches of (inputs, targets): the same
    sequence on every run with the same seed, which the trainer's resume relies on. Every shape
    is static ([batch_size, seq] with the features padded to the tokenizer's length, and
    drop_remainder), as XLA on TPUs needs."""
    if not features.targets:
        raise TaskDataError("training needs labeled data")
    n = len(features)
    dataset = tf.data.Dataset.from_tensor_slices((features.inputs, features.targets))
    return (dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
            .batch(batch_size, drop_remainder=True).prefetch(2))


def packed_forward(model, inputs: dict, training):
    """A task model's training/evaluation forward on the batch's real tokens only, for
    `Trainer(forward=...)`: the batch is cut to its longest row, and every position-wise layer runs
    on the attended tokens (`bert_tf.layers.packed`); the same layers and weights as
    `model(inputs)`, equal up to float rounding (dropout draws other masks: it hashes the positions
    of the tensors it sees). Fine-tuning batches are padded to --max-length for static shapes, and
    short texts leave most of each row padding (measured in docs/results.md).

    inputs: int32 [b, t] each → the model's outputs; per-token outputs ([b, w, ...] for the cut
    width w) are padded back to [b, t, ...] with zeros at the positions the loss ignores (labels
    IGNORE_INDEX there), so targets keep their [b, t] shape. Not for XLA: w and the token count
    depend on the data."""
    from bert_tf.layers.packed import packing_index
    mask = tf.convert_to_tensor(inputs["attention_mask"])                        # [b, t]
    width = tf.shape(mask)[1]
    columns = tf.range(1, width + 1)[tf.newaxis, :]                              # [1, t]
    cut_width = tf.maximum(tf.reduce_max(tf.where(mask > 0, columns, 0)), 1)     # last attended + 1
    cut = {name: (value[:, :cut_width] if name in INPUT_NAMES else value)
           for name, value in inputs.items()}
    outputs = model.forward(cut, packing=packing_index(cut["attention_mask"]), training=training)
    if model.last_layer_positions(cut) is not None:   # outputs per input, not per token
        return outputs

    def pad_back(value):                              # [b, w, ...] → [b, t, ...]
        rank = len(value.shape)
        return tf.pad(value, [[0, 0], [0, width - cut_width]] + [[0, 0]] * (rank - 2))
    return {name: pad_back(value) for name, value in outputs.items()}


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(num_examples / batch_size))


def masked_mean_cross_entropy(labels, logits):
    """Mean token-level cross entropy over labels != IGNORE_INDEX.

    labels: int [b, s]; logits: float [b, s, L]. Averaged over the labeled tokens of the batch,
    as Hugging Face's token classification does; 0 when the batch has none.
    """
    labels = tf.cast(labels, tf.int32)
    weights = tf.cast(labels != IGNORE_INDEX, tf.float32)
    safe = tf.where(labels == IGNORE_INDEX, 0, labels)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(safe, tf.cast(logits, tf.float32))
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def soft_cross_entropy(teacher_logits, student_logits, temperature: float, weights=None):
    """Hinton et al.'s distillation loss: T² · KL(softmax(teacher/T) ‖ softmax(student/T)) over the
    last axis, averaged over the positions with weight 1 (all when `weights` is None).

    teacher_logits, student_logits: float [..., classes]; weights: float [...] (0/1). The T²
    factor keeps its gradients on the scale of the hard-label loss whatever the temperature."""
    t = tf.cast(temperature, tf.float32)
    teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
    log_student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / t, axis=-1)
    log_teacher = tf.math.log(tf.maximum(teacher, 1e-30))
    kl = tf.reduce_sum(teacher * (log_teacher - log_student), axis=-1)          # [...]
    if weights is None:
        return t * t * tf.reduce_mean(kl)
    weights = tf.cast(weights, tf.float32)
    return t * t * tf.reduce_sum(kl * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
