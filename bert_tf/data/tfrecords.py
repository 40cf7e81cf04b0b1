"""Pre-training TFRecords: writing google-research/bert's examples and loading them for training.

On disk, each record is a `tf.train.Example` with google-research/bert's feature names, so files
are interchangeable with that repository and with Model Garden (`use_v2_feature_names=False`):

| feature (file)          | shape                      | batch key (bert_tf)     | role         |
|-------------------------|----------------------------|-------------------------|--------------|
| input_ids               | [max_seq_length] int64     | input_ids               | model input  |
| input_mask              | [max_seq_length] int64     | attention_mask          | model input  |
| segment_ids             | [max_seq_length] int64     | token_type_ids          | model input  |
| masked_lm_positions     | [max_predictions] int64    | masked_lm_positions     | model input  |
| masked_lm_ids           | [max_predictions] int64    | masked_lm_ids           | target       |
| masked_lm_weights       | [max_predictions] float32  | masked_lm_weights       | target       |
| next_sentence_labels    | [1] int64                  | next_sentence_labels    | target ([b]) |

Padding follows the original: ids, mask and segment ids padded with 0 to `max_seq_length`;
positions and ids with 0 and weights with 0.0 to `max_predictions_per_seq`.

`load_pretraining_dataset` reads them back as batches of dicts under the bert_tf keys (int32,
`next_sentence_labels` shape [batch]); `split_inputs_and_targets` splits a batch for `fit`.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Mapping, Sequence

from bert_tf import fileio
from bert_tf.atomic import replaced_directory

logger = logging.getLogger(__name__)

# google-research/bert feature name -> bert_tf batch key.
FEATURE_TO_BATCH_KEY = {
    "input_ids": "input_ids",
    "input_mask": "attention_mask",
    "segment_ids": "token_type_ids",
    "masked_lm_positions": "masked_lm_positions",
    "masked_lm_ids": "masked_lm_ids",
    "masked_lm_weights": "masked_lm_weights",
    "next_sentence_labels": "next_sentence_labels",
}
MODEL_INPUT_KEYS = ("input_ids", "token_type_ids", "attention_mask", "masked_lm_positions")
TARGET_KEYS = ("masked_lm_ids", "masked_lm_weights", "next_sentence_labels")
METADATA_FILE = "metadata.json"


class PretrainingRecordError(ValueError):
    """Bad output directory, bad records or bad loader arguments (the message says which)."""


def shard_file_name(index: int, num_shards: int, compression: str | None) -> str:
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return f"pretraining-{index:05d}-of-{num_shards:05d}{suffix}"


def _normalize_compression(compression: str | None) -> str | None:
    if compression in (None, "", "none", "NONE"):
        return None
    if str(compression).upper() == "GZIP":
        return "GZIP"
    raise PretrainingRecordError(f"compression must be None or 'GZIP', got {compression!r}")


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Fails early when `output_dir` holds files and `overwrite` is off."""
    if fileio.isfile(output_dir):
        raise PretrainingRecordError(f"output {output_dir!r} is a file, expected a directory")
    if fileio.isdir(output_dir) and fileio.listdir(output_dir) and not overwrite:
        raise PretrainingRecordError(f"output directory {output_dir!r} is not empty; choose another "
                                     "or pass overwrite (--overwrite)")


def instance_to_example(instance, vocab: Mapping[str, int], max_seq_length: int,
                        max_predictions_per_seq: int):
    """One `TrainingInstance` -> `tf.train.Example` exactly as google's writer builds it."""
    import tensorflow as tf

    def ids(tokens):
        try:
            return [vocab[t] for t in tokens]
        except KeyError as e:
            raise PretrainingRecordError(f"token {e.args[0]!r} is not in the vocabulary") from None

    input_ids = ids(instance.tokens)
    if len(input_ids) > max_seq_length:
        raise PretrainingRecordError(f"instance has {len(input_ids)} tokens > max_seq_length "
                                     f"{max_seq_length}")
    if len(instance.masked_lm_positions) > max_predictions_per_seq:
        raise PretrainingRecordError(f"instance has {len(instance.masked_lm_positions)} predictions "
                                     f"> max_predictions_per_seq {max_predictions_per_seq}")
    pad = max_seq_length - len(input_ids)
    input_mask = [1] * len(input_ids) + [0] * pad
    segment_ids = list(instance.segment_ids) + [0] * pad
    input_ids = input_ids + [0] * pad
    pad_p = max_predictions_per_seq - len(instance.masked_lm_positions)
    positions = list(instance.masked_lm_positions) + [0] * pad_p
    masked_ids = ids(instance.masked_lm_labels) + [0] * pad_p
    weights = [1.0] * len(instance.masked_lm_labels) + [0.0] * pad_p

    def int_feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "input_ids": int_feature(input_ids),
        "input_mask": int_feature(input_mask),
        "segment_ids": int_feature(segment_ids),
        "masked_lm_positions": int_feature(positions),
        "masked_lm_ids": int_feature(masked_ids),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=weights)),
        "next_sentence_labels": int_feature([1 if instance.is_random_next else 0]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_instances(instances: Sequence, vocab: Mapping[str, int], output_dir: str, *,
                    max_seq_length: int, max_predictions_per_seq: int, num_shards: int = 1,
                    compression: str | None = None, overwrite: bool = False,
                    show_progress: bool = False, metadata: dict | None = None) -> dict:
    """Writes instances round-robin over `num_shards` files (as google's writer does over its
    output files) into a fresh directory, then moves it to `output_dir`. Returns the metadata."""
    import tensorflow as tf
    import tqdm

    compression = _normalize_compression(compression)
    if num_shards < 1:
        raise PretrainingRecordError(f"num_shards must be at least 1, got {num_shards}")
    check_output_dir(output_dir, overwrite)
    # Built in a staging directory that replaces `output_dir` whole when complete (an owner-tagged
    # temporary: the next write there removes one a killed writer left).
    with replaced_directory(output_dir) as tmp:
        names = [shard_file_name(i, num_shards, compression) for i in range(num_shards)]
        options = tf.io.TFRecordOptions(compression_type=compression or "")
        writers = [tf.io.TFRecordWriter(os.path.join(tmp, n), options) for n in names]
        counts = [0] * num_shards
        random_next = 0
        predictions = 0
        for index, instance in enumerate(tqdm.tqdm(instances, disable=not show_progress,
                                                   unit="inst", desc="write")):
            example = instance_to_example(instance, vocab, max_seq_length, max_predictions_per_seq)
            writers[index % num_shards].write(example.SerializeToString())
            counts[index % num_shards] += 1
            random_next += int(instance.is_random_next)
            predictions += len(instance.masked_lm_positions)
        for w in writers:
            w.close()
        meta = dict(metadata or {})
        meta.update({
            "format": "google-research/bert tf.train.Example",
            "num_instances": len(instances), "num_predictions": predictions,
            "num_random_next": random_next, "max_seq_length": max_seq_length,
            "max_predictions_per_seq": max_predictions_per_seq, "compression": compression,
            "files": names, "instances_per_file": counts,
        })
        with fileio.open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
    return meta


# ----------------------------------------------------------------------------------------------
# Loading for training.
# ----------------------------------------------------------------------------------------------

def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    import tensorflow as tf

    seq = tf.io.FixedLenFeature([max_seq_length], tf.int64)
    pred = tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
    return {
        "input_ids": seq, "input_mask": seq, "segment_ids": seq,
        "masked_lm_positions": pred, "masked_lm_ids": pred,
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def parse_examples(serialized, max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """Serialized examples [batch] -> dict of bert_tf batch keys (int32; weights float32)."""
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, feature_spec(max_seq_length, max_predictions_per_seq))
    batch = {}
    for name, value in parsed.items():
        if value.dtype == tf.int64:
            value = tf.cast(value, tf.int32)
        batch[FEATURE_TO_BATCH_KEY[name]] = value
    batch["next_sentence_labels"] = tf.reshape(batch["next_sentence_labels"], [-1])  # [b, 1] -> [b]
    return batch


def split_inputs_and_targets(batch: Mapping) -> tuple:
    """A flat batch dict -> (model inputs dict, targets dict), the form `keras.Model.fit` takes."""
    return ({k: batch[k] for k in MODEL_INPUT_KEYS}, {k: batch[k] for k in TARGET_KEYS})


def _compression_of(path: str) -> str | None:
    return "GZIP" if path.endswith(".gz") else None


def load_pretraining_dataset(file_pattern, batch_size: int, max_seq_length: int,
                             max_predictions_per_seq: int, *, shuffle: bool = True,
                             seed: int | None = None, repeat: bool = True,
                             input_context=None, shuffle_buffer_size: int = 10000,
                             drop_remainder: bool = True, compression: str | None = "auto",
                             cycle_length: int | None = None):
    """TFRecords written by `write_instances` (or google's script) -> batches of dicts.

    Args:
      file_pattern: a glob, a comma-separated list of globs, or a list of them; `.gz` files are
        read as GZIP when `compression="auto"`.
      batch_size: the global batch size; with `input_context` each pipeline batches
        `input_context.get_per_replica_batch_size(batch_size)`.
      shuffle, seed: shuffle file order and records (buffer `shuffle_buffer_size`) with `seed`.
        With a fixed seed (or shuffle off) the order is deterministic.
      repeat: loop forever (training); off: one pass.
      input_context: a `tf.distribute.InputContext`: files are sharded across input pipelines
        when there are at least as many files as pipelines, records otherwise.
    Returns a `tf.data.Dataset` of dicts with keys `MODEL_INPUT_KEYS + TARGET_KEYS`: int32
    [b, max_seq_length] / [b, max_predictions_per_seq], `masked_lm_weights` float32,
    `next_sentence_labels` int32 [b].
    """
    import tensorflow as tf

    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = []
    for pattern in patterns:
        for part in (p.strip() for p in pattern.split(",")):
            if part:
                files.extend(sorted(tf.io.gfile.glob(part)))
    if not files:
        raise PretrainingRecordError(f"no TFRecord files match {file_pattern!r}")
    if batch_size < 1:
        raise PretrainingRecordError(f"batch_size must be at least 1, got {batch_size}")
    if compression == "auto":
        kinds = {_compression_of(f) for f in files}
        if len(kinds) != 1:
            raise PretrainingRecordError("files mix GZIP (.gz) and uncompressed records; pass "
                                         "compression explicitly or load them separately")
        compression = kinds.pop()
    compression = _normalize_compression(compression)

    per_pipeline_batch = batch_size
    dataset = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    if input_context is not None:
        per_pipeline_batch = input_context.get_per_replica_batch_size(batch_size)
        pipelines, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= pipelines:
            dataset = dataset.shard(pipelines, index)
            logger.info("input pipeline %d of %d reads %d of the %d files: %s", index, pipelines,
                        len(files[index::pipelines]), len(files),
                        ", ".join(os.path.basename(f) for f in files[index::pipelines]))
        else:
            shard_records = True
            logger.warning("%d files for %d input pipelines: each pipeline reads every file and "
                           "keeps every %d-th record (write at least as many files as workers "
                           "to read 1/%d each)", len(files), pipelines, pipelines, pipelines)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression or ""),
        cycle_length=cycle_length or min(len(files), 8), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shard_records:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(per_pipeline_batch, drop_remainder=drop_remainder)
    dataset = dataset.map(lambda s: parse_examples(s, max_seq_length, max_predictions_per_seq),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def read_metadata(output_dir: str) -> dict:
    path = os.path.join(output_dir, METADATA_FILE)
    try:
        with fileio.open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise PretrainingRecordError(f"{output_dir!r} has no {METADATA_FILE}: not written by "
                                     "create-pretraining-data") from None
