"""Dynamic masking: BERT's masked LM rule applied in the tf.data pipeline, fresh every epoch.

Instead of fixing masks once on disk (`bert_tf.data.pretraining`, `dupe_factor` copies), sentence
pairs are drawn from the tokenized documents on the fly and masked per batch with tensorflow-text's
`mask_language_model`. The masking rule is google-research/bert's:

* candidates are all tokens but [CLS]/[SEP] (with whole-word masking: whole words, a piece and the
  "##" pieces after it, all masked together; with a word segmenter also a CJK character and the
  characters that continue its segmented word, Chinese-BERT-wwm's words, see
  `bert_tf.data.word_segmentation`);
* `min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))` tokens per sequence,
  counting [CLS]/[SEP] in `len(tokens)` and rounding half to even in float64 (Python 3's `round`);
  candidates are taken in random order and a whole word that would overshoot is skipped;
* each chosen token: [MASK] 80%, a random id of the whole vocabulary 10%, unchanged 10%;
* positions come out sorted.

`BertItemSelector` (the count and the whole-word budget) and `BertMaskValuesChooser` (80/10/10)
plug into `tf_text.mask_language_model`. Both use stateless random ops keyed by a per-batch seed
(the base seed and the batch index), so with a fixed seed every batch is reproducible, also with
parallel map calls. The one difference to the static script: a "##" piece right after [SEP] (B
truncated from the front) starts its own word here, where the original adds it to A's last word.

Segmented words travel with the ids: a piece that continues a segmented word (a
`WordContinuation`) has the id `vocab_size + id` (`piece_ids`) from the documents through pairing
and batching; `DynamicMasker` takes the mark off before masking, so it costs no extra tensors.

`dynamic_masking_dataset` builds the whole pipeline from text files and yields the same batch
dicts as `bert_tf.data.tfrecords.load_pretraining_dataset`.
"""

from __future__ import annotations

import os
import random
from typing import Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf.data import documents as documents_lib
from bert_tf.data import pretraining, word_segmentation


class BertItemSelector(tf_text.RandomItemSelector):
    """Selects items (tokens, or words on a [batch, (words), (pieces)] input) by BERT's rule.

    A `RandomItemSelector` (its `get_selectable` filters the unselectable ids) whose count is
    google's per-sequence rule instead of `ceil(selectable * rate)` capped per batch.

    Args:
      max_selections_per_seq: `max_predictions_per_seq`.
      selection_rate: `masked_lm_prob`, applied to the sequence length in tokens.
      unselectable_ids: ids never selected ([CLS], [SEP], [PAD]); a word holding one is skipped.
      seed: int32/int64 [2], the stateless random seed of this batch.
    """

    def __init__(self, max_selections_per_seq: int, selection_rate: float, unselectable_ids,
                 seed):
        super().__init__(max_selections_per_seq, selection_rate, list(unselectable_ids))
        self.max_selections_per_seq = max_selections_per_seq
        self.seed = seed

    def get_selection_mask(self, input_ids, axis=1):
        if axis != 1:
            raise ValueError(f"BertItemSelector selects along axis 1 only, got axis={axis}")
        selectable = self.get_selectable(input_ids, axis)  # bool [b, (items)]
        if input_ids.ragged_rank == 2:
            # [b, (words), (pieces)]: an item's length is its number of pieces.
            item_lengths = selectable.with_flat_values(
                tf.cast(input_ids.values.row_lengths(), tf.int32))
        else:
            item_lengths = selectable.with_flat_values(tf.ones_like(selectable.flat_values, tf.int32))
        num_tokens = tf.reduce_sum(item_lengths, axis=1)  # [b]
        # Python's round(len * prob): float64 product, half to even (tf.round), as the original.
        budget = tf.cast(tf.round(tf.cast(num_tokens, tf.float64) * self.selection_rate), tf.int32)
        budget = tf.minimum(self.max_selections_per_seq, tf.maximum(1, budget))  # [b]

        selectable_dense = selectable.to_tensor(False)  # [b, w]
        lengths_dense = item_lengths.to_tensor(0)  # [b, w]
        # A uniformly random order of each row's items: argsort of iid uniforms, unselectable last.
        priority = tf.random.stateless_uniform(tf.shape(lengths_dense), self.seed)
        priority = tf.where(selectable_dense, priority, 2.0)
        order = tf.argsort(priority, axis=1, stable=True)  # [b, w]
        shuffled_lengths = tf.gather(lengths_dense, order, batch_dims=1)
        shuffled_selectable = tf.gather(selectable_dense, order, batch_dims=1)

        # Walk the shuffled items, taking each that still fits the budget (google's loop: a word
        # that would overshoot is skipped, a later shorter one may still fit).
        def take_if_fits(state, item):
            used, _ = state
            length, can_select = item  # [b], [b]
            take = can_select & (used + length <= budget)
            return used + tf.where(take, length, 0), take

        _, taken = tf.scan(
            take_if_fits, (tf.transpose(shuffled_lengths), tf.transpose(shuffled_selectable)),
            initializer=(tf.zeros_like(budget), tf.zeros_like(budget, tf.bool)))
        taken = tf.transpose(taken)  # [b, w] in shuffled order
        taken = tf.gather(taken, tf.argsort(order, axis=1), batch_dims=1)  # back to item order
        return tf.RaggedTensor.from_tensor(taken, lengths=selectable.row_lengths())


class BertMaskValuesChooser(tf_text.MaskValuesChooser):
    """80% [MASK], 10% a random id in [0, vocab_size), 10% unchanged; per token, stateless."""

    def __init__(self, vocab_size: int, mask_token: int, seed, mask_token_rate: float = 0.8,
                 random_token_rate: float = 0.1):
        super().__init__(vocab_size, mask_token, mask_token_rate, random_token_rate)
        self._rates = (mask_token_rate, random_token_rate)
        self.seed = seed

    def get_mask_values(self, masked_lm_ids):
        ids = masked_lm_ids.flat_values  # [n]
        choice_seed, random_id_seed = tf.unstack(tf.random.experimental.stateless_split(self.seed, 2))
        u = tf.random.stateless_uniform(tf.shape(ids), choice_seed)
        random_ids = tf.random.stateless_uniform(tf.shape(ids), random_id_seed, minval=0,
                                                 maxval=self.vocab_size, dtype=tf.int64)
        mask_rate, random_rate = self._rates
        values = tf.where(u < mask_rate, tf.cast(self.mask_token, ids.dtype),
                          tf.where(u < mask_rate + random_rate, tf.cast(random_ids, ids.dtype), ids))
        return masked_lm_ids.with_flat_values(values)


def piece_ids(pieces, vocab: dict) -> list:
    """Piece strings -> ids for `dynamic_masking_dataset_from_documents`: a `WordContinuation`
    piece (it continues a segmented word) gets `len(vocab) + id`, the mark `DynamicMasker` reads."""
    size = len(vocab)
    return [vocab[p] + size if word_segmentation.is_word_continuation(p) else vocab[p] for p in pieces]


def group_words(token_ids: tf.RaggedTensor, continuation: tf.Tensor, special: tf.Tensor,
                continues_word=None):
    """[b, (tokens)] -> [b, (words), (pieces)]: a word is a piece plus the "##" pieces after it
    (and the pieces marked in `continues_word`).

    `continuation`/`special`: bool [vocab_size], ids that are "##" pieces / special tokens.
    `continues_word`: None or bool [n] over `token_ids.flat_values`, pieces that continue a
    segmented word. A special token is always its own word, and so is the piece after it."""
    flat = token_ids.flat_values  # [n]
    row_start = tf.scatter_nd(tf.expand_dims(token_ids.row_starts(), 1),
                              tf.ones_like(token_ids.row_starts(), tf.bool), tf.shape(flat, tf.int64))
    previous_special = tf.concat([[False], tf.gather(special, flat[:-1])], axis=0)
    continues = tf.gather(continuation, flat)
    if continues_word is not None:
        continues = continues | continues_word
    starts = ~continues | tf.gather(special, flat) | previous_special | row_start
    word_index = tf.cumsum(tf.cast(starts, tf.int64)) - 1  # [n]
    words = tf.RaggedTensor.from_value_rowids(flat, word_index,
                                              nrows=tf.reduce_sum(tf.cast(starts, tf.int64)))
    words_per_row = tf.reduce_sum(token_ids.with_flat_values(tf.cast(starts, tf.int64)), axis=1)
    return tf.RaggedTensor.from_row_lengths(words, words_per_row)


class DynamicMasker:
    """Masks ragged batches of token ids by BERT's rule (see the module docstring).

    Call with `token_ids` ragged [b, (tokens)] and a stateless `seed` [2]; returns
    `(masked_ids [b, (tokens)], masked_lm_positions [b, (k)], masked_lm_ids [b, (k)])`. An id
    `vocab_size + id` is the piece `id` continuing a segmented word (`piece_ids`); the outputs
    hold plain ids."""

    def __init__(self, vocab: Sequence[str] | dict, max_predictions_per_seq: int = 20,
                 masked_lm_prob: float = 0.15, whole_word_mask: bool = False):
        words = list(vocab)
        index = {w: i for i, w in enumerate(words)}
        for name in ("[CLS]", "[SEP]", "[MASK]"):
            if name not in index:
                raise ValueError(f"the vocabulary has no {name} token")
        self.vocab_size = len(words)
        self.mask_id = index["[MASK]"]
        self.unselectable_ids = [index[t] for t in ("[CLS]", "[SEP]", "[PAD]") if t in index]
        self.max_predictions_per_seq = max_predictions_per_seq
        self.masked_lm_prob = masked_lm_prob
        self.whole_word_mask = whole_word_mask
        self.continuation = tf.constant([w.startswith("##") for w in words])
        special = [False] * len(words)
        for i in self.unselectable_ids:
            special[i] = True
        self.special = tf.constant(special)

    def __call__(self, token_ids: tf.RaggedTensor, seed):
        select_seed, value_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        marked = token_ids.flat_values >= self.vocab_size  # bool [n]: continues a segmented word
        token_ids = token_ids.with_flat_values(
            token_ids.flat_values - tf.where(marked, tf.cast(self.vocab_size, token_ids.dtype), 0))
        items = group_words(token_ids, self.continuation, self.special, marked) \
            if self.whole_word_mask else token_ids
        selector = BertItemSelector(self.max_predictions_per_seq, self.masked_lm_prob,
                                    self.unselectable_ids, select_seed)
        chooser = BertMaskValuesChooser(self.vocab_size, self.mask_id, value_seed)
        masked, positions, labels = tf_text.mask_language_model(items, selector, chooser, axis=1)
        if masked.ragged_rank > 1:
            masked = masked.merge_dims(1, -1)
        return masked, positions, labels


def pad_batch(masked_ids, segment_ids, positions, labels, next_sentence_labels,
              sequence_length, max_predictions_per_seq: int) -> dict:
    """Ragged batch -> the dense dict `load_pretraining_dataset` yields (int32, weights float32)."""
    def dense(rt, width, dtype=tf.int32):
        rt = tf.cast(rt, dtype)
        if isinstance(width, int):
            return rt.to_tensor(0, shape=[None, width])
        # A bucket's bound (a tensor): pad the batch's longest row up to it. [b, width]
        x = rt.to_tensor(0)
        return tf.pad(x, [[0, 0], [0, tf.cast(width, tf.int32) - tf.shape(x)[1]]])

    batch = {
        "input_ids": dense(masked_ids, sequence_length),
        "token_type_ids": dense(segment_ids, sequence_length),
        "attention_mask": dense(tf.ones_like(masked_ids), sequence_length),
        "masked_lm_positions": dense(positions, max_predictions_per_seq),
        "masked_lm_ids": dense(labels, max_predictions_per_seq),
        "masked_lm_weights": dense(tf.ones_like(labels, tf.float32), max_predictions_per_seq, tf.float32),
        "next_sentence_labels": tf.cast(next_sentence_labels, tf.int32),
    }
    return batch


def dynamic_masking_dataset(input_files, vocab_file: str, batch_size: int,
                            max_seq_length: int = 128, max_predictions_per_seq: int = 20, *,
                            masked_lm_prob: float = 0.15, whole_word_mask: bool = False,
                            word_segmenter: str = "none",
                            short_seq_prob: float = 0.1, lowercase: bool = True,
                            seed: int | None = None, repeat: bool = True,
                            shuffle_buffer_size: int = 10000, bucket_boundaries=None,
                            input_context=None, drop_remainder: bool = True):
    """Text files (one sentence per line, blank line between documents) -> masked batches.

    Sentence pairs are drawn with google-research/bert's pairing rules (NSP 50% random next,
    `short_seq_prob` short targets, random-end truncation) anew each pass over the documents,
    shuffled, batched, then masked by `DynamicMasker`.

    Args:
      word_segmenter: with `whole_word_mask`, "jieba" takes the words of Chinese text from a word
        segmenter (`bert_tf.data.word_segmentation`; each line is segmented once, here, not per
        pass); "none" on mostly-CJK text with `whole_word_mask` is an error.
      batch_size: the global batch size (per pipeline: `input_context.get_per_replica_batch_size`).
      seed: fixes pairing, shuffling and masking; None draws a random seed.
      repeat: endless passes (each with new pairs and masks); off: one pass.
      bucket_boundaries: None pads every batch to `max_seq_length`; a list of lengths groups
        pairs by length into buckets (`<= boundary`) and pads each batch to its bucket's bound,
        which leaves the sequence dimension dynamic ([b, None]): not for TPUs, which need static
        shapes (the trainer refuses it with a TPUStrategy or `static_shapes`).
      input_context: a `tf.distribute.InputContext`; each input pipeline takes every n-th document.
      drop_remainder: batches of exactly `batch_size` (a short last batch, which only a single
        pass has, is dropped), so the batch dimension is static: without buckets every element
        is [batch_size, max_seq_length], [batch_size, max_predictions_per_seq] or [batch_size].
    Returns a `tf.data.Dataset` of dicts with the keys of `load_pretraining_dataset`.
    """
    word_segmentation.validate_segmenter_option(word_segmenter, whole_word_mask)
    vocab = documents_lib.read_vocab(vocab_file)
    segmenter = word_segmentation.create_segmenter(word_segmenter)
    to_pieces = None
    token_documents = []
    for path in pretraining.expand_input_files(input_files):
        text_documents = documents_lib.read_documents(path)
        word_segmentation.check_word_segmenter(text_documents, word_segmenter, whole_word_mask, path)
        if to_pieces is None:  # built after the first file passed its checks (it takes seconds)
            to_pieces = documents_lib.wordpiece_fn(vocab_file, lowercase=lowercase,
                                                   with_offsets=segmenter is not None)
        for document in documents_lib.tokenize_documents(text_documents, to_pieces,
                                                         segmenter=segmenter):
            token_documents.append([piece_ids(sentence, vocab) for sentence in document])
    return dynamic_masking_dataset_from_documents(
        token_documents, list(vocab), batch_size, max_seq_length, max_predictions_per_seq,
        masked_lm_prob=masked_lm_prob, whole_word_mask=whole_word_mask,
        short_seq_prob=short_seq_prob, seed=seed, repeat=repeat,
        shuffle_buffer_size=shuffle_buffer_size, bucket_boundaries=bucket_boundaries,
        input_context=input_context, drop_remainder=drop_remainder)


def dynamic_masking_dataset_from_documents(token_documents, vocab_words: Sequence[str],
                                           batch_size: int, max_seq_length: int = 128,
                                           max_predictions_per_seq: int = 20, *,
                                           masked_lm_prob: float = 0.15,
                                           whole_word_mask: bool = False,
                                           short_seq_prob: float = 0.1, seed: int | None = None,
                                           repeat: bool = True, shuffle_buffer_size: int = 10000,
                                           bucket_boundaries=None, input_context=None,
                                           drop_remainder: bool = True):
    """`dynamic_masking_dataset` on documents already tokenized: lists of sentences of token ids
    (`vocab_words[id]` is the piece; `piece_ids` makes them, `len(vocab_words) + id` marking a
    piece that continues a segmented word). Same arguments and batches."""
    pretraining.PretrainingOptions(
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
        masked_lm_prob=masked_lm_prob, short_seq_prob=short_seq_prob).validate()
    if batch_size < 1:
        raise pretraining.PretrainingDataError(f"batch_size must be at least 1, got {batch_size}")
    boundaries = sorted({int(b) for b in bucket_boundaries or ()} | {max_seq_length})
    if boundaries[0] < 5 or boundaries[-1] > max_seq_length:
        raise pretraining.PretrainingDataError(
            f"bucket_boundaries must lie in [5, max_seq_length={max_seq_length}], got {bucket_boundaries}")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    vocab = {w: i for i, w in enumerate(vocab_words)}
    all_documents = [d for d in token_documents if d]
    pipeline_id, num_pipelines = 0, 1
    if input_context is not None:
        pipeline_id, num_pipelines = input_context.input_pipeline_id, input_context.num_input_pipelines
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        all_documents = all_documents[pipeline_id::num_pipelines]
    if not all_documents:
        raise pretraining.PretrainingDataError(f"no text in the documents (for input pipeline "
                                               f"{pipeline_id} of {num_pipelines})")

    def pairs(epoch):
        # Pass `epoch` has its own stream: the same pairs for a given seed, new ones each pass.
        rng = random.Random(seed * 1_000_003 + int(epoch) * 7919 + pipeline_id)
        order = list(range(len(all_documents)))
        rng.shuffle(order)
        for document_index in order:
            for inst in pretraining.create_instances_from_document(
                    all_documents, document_index, max_seq_length, short_seq_prob, rng, None,
                    cls=vocab["[CLS]"], sep=vocab["[SEP]"]):
                yield inst.tokens, inst.segment_ids, int(inst.is_random_next)

    signature = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32),
                 tf.TensorSpec([], tf.int32))
    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    dataset = epochs.flat_map(
        lambda e: tf.data.Dataset.from_generator(pairs, output_signature=signature, args=(e,)))
    dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)

    if len(boundaries) == 1:
        dataset = dataset.ragged_batch(batch_size, drop_remainder=drop_remainder)
    else:
        bounds = tf.constant(boundaries, tf.int64)

        def bucket(ids, segments, label):
            return tf.searchsorted(bounds, tf.size(ids, tf.int64)[None], side="left", out_type=tf.int64)[0]

        dataset = dataset.group_by_window(
            key_func=bucket, window_size=batch_size,
            reduce_func=lambda key, window: window.ragged_batch(batch_size,
                                                                drop_remainder=drop_remainder))

    masker = DynamicMasker(list(vocab_words), max_predictions_per_seq, masked_lm_prob, whole_word_mask)

    def mask(index, batch):
        ids, segments, labels = batch
        batch_seed = tf.stack([tf.cast(seed, tf.int64), index * num_pipelines + pipeline_id])
        masked, positions, masked_ids = masker(ids, batch_seed)
        length = max_seq_length
        if len(boundaries) > 1:
            longest = tf.cast(tf.reduce_max(ids.row_lengths()), tf.int64)
            length = tf.gather(bounds, tf.searchsorted(bounds, longest[None], side="left"))[0]
        return pad_batch(masked, segments, positions, masked_ids, labels, length,
                         max_predictions_per_seq)

    dataset = dataset.enumerate().map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
