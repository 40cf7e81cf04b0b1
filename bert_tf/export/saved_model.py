"""`export_saved_model`: a SavedModel in TF Serving's layout, `OUT/NAME/<version>/`.

    saved_models/sentiment/1/saved_model.pb, variables/      the graph and weights
                            assets/vocab.txt, assets/labels.txt
                            assets.extra/tf_serving_warmup_requests
    saved_models/models.config, saved_models/batching_parameters.txt

The version is built in a hidden temporary sibling and renamed into place at the end, so a server
polling `saved_models/sentiment` never loads a half-written version, and an exception part-way
leaves nothing behind. Versions auto-increment from the largest existing one; two exports to
one model directory at once both publish, as distinct versions (the one that finds its number
taken at the final rename takes the next free one; `bert_tf.atomic.StagingDir`). Hidden
temporaries left by killed exports are removed at the next export into the same directory (the
rule is in `bert_tf.atomic`).

The model name (the directory's name, used in models.config, the warmup requests and the
server's URLs) and the label names (one per line in assets/labels.txt) are checked before any
work: `check_model_name`, `check_label_names`.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf.atomic import StagingDir, write_text_atomic
from bert_tf.export.errors import ExportError
from bert_tf.export.serving_config import check_model_name, write_server_configs
from bert_tf.export.serving_module import ID_NAMES, BertServingModule
from bert_tf.export.trimming import AUTO, DEFAULT_GROUP_SIZE
from bert_tf.export.warmup import WARMUP_FILE, write_warmup_requests


def next_version(model_root: str) -> int:
    """1 + the largest integer-named dir in `model_root` (1 for a new model)."""
    if not fileio.isdir(model_root):
        return 1
    versions = [int(v) for v in fileio.listdir(model_root) if v.isdigit()]
    return max(versions, default=0) + 1


def warmup_requests(task) -> list:
    """[(signature, inputs)]: one request per signature, from the task's own warmup inputs
    (for windowed tasks one of them spans several windows, so warmup traces that path too)."""
    requests = []
    if task is not None:
        texts = task.warmup_texts()
        requests.append(("serving_default", texts))
        features, _ = task.serving_features(
            {name: tf.constant(values) for name, values in texts.items()})
        ids = {k: np.asarray(features[k], np.int32) for k in ID_NAMES}
    else:
        ids = {"input_ids": np.zeros([2, 16], np.int32),
               "token_type_ids": np.zeros([2, 16], np.int32),
               "attention_mask": np.ones([2, 16], np.int32)}
    requests.append(("serve_ids", ids))
    requests.append(("serve_examples", {"examples": serialized_examples(ids)}))
    return requests


def serialized_examples(ids: dict) -> np.ndarray:
    """int [b, s] id arrays -> [b] serialized tf.Example (what `serve_examples` parses)."""
    rows = []
    for i in range(len(ids["input_ids"])):
        feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=ids[name][i]))
                   for name in ID_NAMES}
        rows.append(tf.train.Example(features=tf.train.Features(feature=feature))
                    .SerializeToString())
    return np.array(rows, dtype=object)


def check_label_names(labels) -> tuple:
    """The task's label names, each a non-empty string without line breaks (labels.txt holds one
    per line), all different; else ExportError naming the offending label."""
    labels = tuple(labels)
    for label in labels:
        if not isinstance(label, str) or not label or "\n" in label or "\r" in label:
            raise ExportError(f"label names must be non-empty strings without line breaks (one "
                              f"per line in assets/labels.txt), got {label!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ExportError(f"label names must differ, got {duplicates} more than once")
    return labels


def resolve_source(model, tokenizer=None, labels=None, pair=None, task=None):
    """(Keras task model, task or None) from what `export_saved_model` was given: a model
    directory or `.keras` path, a loaded `FinetunedModel`, or a Keras task model (+ tokenizer,
    labels, pair for its task; without a tokenizer there is no text signature)."""
    from bert_tf.tasks.model_dir import FinetunedModel, load_model_source
    from bert_tf.tasks.registry import UnknownTaskError, default_task
    if isinstance(model, (str, os.PathLike)):
        model = load_model_source(model)
    if isinstance(model, FinetunedModel):
        if tokenizer is not None or labels is not None or pair is not None:
            raise ExportError("a fine-tuned model directory defines its tokenizer, labels and "
                              "pair setting (task.json): do not pass them")
        return model.model, task or model.task
    if task is None and tokenizer is not None:
        try:
            task = default_task(model, tokenizer, labels=labels, pair=bool(pair))
        except UnknownTaskError as e:
            raise ExportError(str(e)) from None
    if task is not None and task.tokenizer.vocabulary_size() != model.encoder.config.vocab_size:
        raise ExportError(f"the tokenizer has {task.tokenizer.vocabulary_size()} tokens but the "
                          f"model's vocab_size is {model.encoder.config.vocab_size}")
    return model, task


def export_saved_model(model, out_dir, tokenizer=None, version=None, labels=None, pair=None,
                       task=None, write_configs: bool = True, trim_bucket=AUTO,
                       group_size=DEFAULT_GROUP_SIZE, jit_compile: bool = False,
                       pack=AUTO) -> str:
    """Exports `model` to `out_dir/<version>/`; returns that version directory's path.

    model: a fine-tuned model directory (or `FinetunedModel`): its task.json, labels and vocab
    define the signatures, exactly as `bert-tf predict` uses them. Or a Keras task model with
    `tokenizer` (a `BertTokenizer`; then `serving_default` takes raw text), `labels` (default
    LABEL_i) and `pair` (a classifier over text pairs), or `task` (a task object); without a
    tokenizer `serving_default` is `serve_ids`.
    trim_bucket: every signature cuts the batch's trailing padding to a multiple of this many
    positions before the encoder (exact; see `bert_tf.export.trimming`); None or 0 never cuts;
    "auto" (default): 8 with `jit_compile` (bounds recompilation), the exact length without.
    group_size: with trimming, rows are sorted by length and run `group_size` at a time, each
    group cut to its own longest row; None or 0 cuts the whole batch at its longest row.
    jit_compile: the model runs as an XLA function inside the signatures. TensorFlow (Python,
    C++) runs it as is; TF Serving needs `--xla_cpu_compilation_enabled=true` for it.
    pack: a classifier's position-wise layers run on the batch's real tokens only, its last layer
    on the [CLS] rows only (exact; see `bert_tf.layers.packed`); "auto" (default) packs every
    classifier, False never packs.
    """
    model_root = fileio.abspath(os.fspath(out_dir))
    check_model_name(os.path.basename(model_root), what=f"the model directory {model_root}: "
                     "its name")
    model, task = resolve_source(model, tokenizer, labels, pair, task)
    labels = check_label_names(task.label_names) if task is not None else ()
    automatic = version is None
    if automatic:
        version = next_version(model_root)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    final = os.path.join(model_root, str(version))
    if fileio.exists(final):
        raise ExportError(f"{final} already exists: TF Serving versions are immutable; pick "
                          f"another --version or leave it out to take the next one")

    module = BertServingModule(model, task, trim_bucket=trim_bucket, group_size=group_size,
                               jit_compile=jit_compile, pack=pack)
    # An automatic version taken by a concurrent export meanwhile: publish as the next free one.
    staging_dir = StagingDir(final, (lambda: os.path.join(model_root, str(next_version(model_root))))
                             if automatic else None)
    try:
        with staging_dir as staging:
            # Assets: files the graph does not read but clients (and humans) need with the model.
            asset_dir = os.path.join(staging, "..", os.path.basename(staging) + "-assets")
            fileio.makedirs(asset_dir)
            try:
                if task is not None:
                    write_text_atomic(os.path.join(asset_dir, "vocab.txt"),
                                      "".join(t + "\n" for t in task.tokenizer.get_vocabulary()))
                    module.vocab_file = tf.saved_model.Asset(os.path.join(asset_dir, "vocab.txt"))
                if labels:
                    write_text_atomic(os.path.join(asset_dir, "labels.txt"),
                                      "".join(t + "\n" for t in labels))
                    module.labels_file = tf.saved_model.Asset(os.path.join(asset_dir, "labels.txt"))
                tf.saved_model.save(module, staging, signatures=module.signatures())
            finally:
                fileio.rmtree(asset_dir, ignore_errors=True)
            extra = os.path.join(staging, "assets.extra")
            fileio.makedirs(extra, exist_ok=True)
            write_warmup_requests(os.path.join(extra, WARMUP_FILE), os.path.basename(model_root),
                                  warmup_requests(task))
    except FileExistsError:
        raise ExportError(f"{staging_dir.final} appeared while this export was written: TF "
                          f"Serving versions are immutable; pick another --version or leave it "
                          f"out to take the next one") from None
    if write_configs:
        write_server_configs(os.path.dirname(model_root))
    return staging_dir.final
