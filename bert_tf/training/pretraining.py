"""BERT pre-training (masked LM + next sentence prediction) on the generic `Trainer`.

`run_pretraining(PretrainingConfig(...))` is what `bert-tf pretrain` runs. Output directory:

    OUT/checkpoints/   tf.train checkpoints (model, optimizer, step = data position, seed, loss scale)
    OUT/tensorboard/   scalars: train/{loss,mlm_loss,nsp_loss,mlm_accuracy,nsp_accuracy,
                       learning_rate,examples_per_second,...}, eval/... with --eval-data
    OUT/pretrained/    the final model in HF BertForPreTraining layout (config.json +
                       model.safetensors): `BertPretrainer`/`BertEncoder`/`BertClassifier`
                       `.from_pretrained(OUT/pretrained)` and transformers read it
    OUT/run.json       the settings of the run and its record (`bert_tf.training.run_record`):
                       the model config, every hyperparameter in `RECORD_KEYS`, the sha256 of
                       each --data/--text file the globs match and of --vocab; "complete": true
                       once OUT/pretrained/ holds the final model
    OUT/probe.json     held-out MLM accuracy vs the unigram baseline over the run (`mlm_probe`)

Data: TFRecords from `create-pretraining-data` (`data`: masks fixed when the records were written,
google-research/bert's static masking), or raw text (`text` + `vocab_file`: dynamic masking, as
RoBERTa does: sentence pairs and masks are drawn anew on every pass over the corpus by
`bert_tf.data.masking.dynamic_masking_dataset`, optionally whole-word). Both streams are a pure
function of `seed`, so resuming skips the batches already trained on and continues exactly.

Running the same command again resumes from the newest sound checkpoint (or, when run.json says
the run is complete, does nothing); a rerun with any difference in the record is refused before
any work, naming each difference (`overwrite` deletes the old run first). Devices, XLA, steps per
execution, logging, checkpoint and evaluation intervals are not part of the record. Phase two of
BERT's recipe (longer sequences) is another run into a new OUT with `init_checkpoint` = the
phase-one OUT (or any checkpoint `BertPretrainer.from_pretrained` reads): all weights are carried
over, including every trained position embedding, while the optimizer and the schedule start
afresh.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os

import keras
import tensorflow as tf

from bert_tf import fileio
from bert_tf.atomic import replaced_directory, write_json_atomic
from bert_tf.config import BertConfig
from bert_tf.data.documents import read_vocab
from bert_tf.data.masking import dynamic_masking_dataset
from bert_tf.data.tfrecords import load_pretraining_dataset, read_metadata
from bert_tf.data.word_segmentation import validate_segmenter_option
from bert_tf.models import BertEncoder, BertPretrainer, pretraining_losses
from bert_tf.models.neighbour_init import (ATTENTION_INITS, apply_neighbour_init,
                                           check_neighbour_shape)
from bert_tf.training import run_record
from bert_tf.training.checkpoints import CheckpointError, newest_sound_checkpoint, read_state
from bert_tf.training.mlm_probe import HeldOutMlmProbe, take_batches
from bert_tf.training.distribution import (DistributionError, cluster_workers, create_strategy,
                                          is_chief, resolve_strategy_name)
from bert_tf.training.optimization import OPTIMIZER_NAMES, create_optimizer
from bert_tf.training.trainer import (PeriodicEvaluation, Trainer, TrainingError,
                                      TrainingOptions, TrainingResult)

logger = logging.getLogger(__name__)

MIXED_PRECISION_POLICIES = {None: "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
PRETRAINED_DIR = "pretrained"
PROBE_FILE = "probe.json"


@dataclasses.dataclass
class PretrainingConfig:
    """Everything one pre-training run needs. `batch_size` is the global batch per optimizer step
    (google's `train_batch_size`); it is split across replicas, then into `grad_accum_steps`
    micro-batches on each."""
    model_config: BertConfig | str
    data: str | None                            # TFRecord glob(s) from create-pretraining-data
    output_dir: str
    total_steps: int
    batch_size: int = 32
    max_seq_length: int | None = None           # default: from the data's metadata.json
    max_predictions_per_seq: int | None = None  # default: from the data's metadata.json
    learning_rate: float | None = None          # default: default_learning_rate(hidden size)
    warmup_steps: int | None = None             # default: a tenth of total_steps
    end_learning_rate: float = 0.0
    decay_power: float = 1.0
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    clip_norm: float | None = 1.0
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    strategy: str = "auto"
    mixed_precision: str | None = None          # None | "bf16" | "fp16"
    xla: bool = False
    grad_accum_steps: int = 1
    steps_per_execution: int = 1                # steps per tf.function call (same results)
    # "batch": every worker reads the whole stream and keeps its share of each global batch (a
    # step trains on the same examples with any number of workers; resumes exactly on another
    # count). "files": each worker reads only its share of the --data files (1/N of the reading;
    # the data order then depends on the number of workers, which the run record pins).
    data_sharding: str = "batch"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    seed: int = 12345
    init_checkpoint: str | None = None
    # A fresh model's start: "random" = google's initialization; "neighbours" = the same with
    # layer 0's heads looking at the previous / next token (bert_tf.models.neighbour_init: a small
    # model's held-out MLM goes past the bag-of-words level; docs/results.md has what it costs).
    # Ignored with init_checkpoint.
    attention_init: str = "random"
    shuffle_buffer_size: int = 10000
    eval_data: str | None = None
    eval_every: int | None = None
    eval_steps: int | None = None
    progress: bool = True
    # Dynamic masking from raw text instead of `data` (one sentence per line, blank lines between
    # documents): google's pairing and masking rules, new pairs and masks on every pass.
    text: str | None = None                     # text file glob(s), comma-separated
    vocab_file: str | None = None
    lowercase: bool = True
    whole_word_mask: bool = False
    word_segmenter: str = "none"                # with whole_word_mask: "jieba" for Chinese text
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    # The held-out MLM probe (bert_tf.training.mlm_probe): `probe_batches` batches of `eval_text`
    # (raw text, masked with a fixed seed) or of `eval_data`, else of the training stream itself,
    # every `probe_every` steps (default: a tenth of the run) and at the end. 0 batches: off.
    eval_text: str | None = None
    probe_every: int | None = None
    probe_batches: int = 8
    overwrite: bool = False                     # delete the run already in output_dir first

    def validate(self) -> None:
        if bool(self.data) == bool(self.text):
            raise TrainingError("give the training data either as TFRecords (data / --data) or as "
                                "raw text for dynamic masking (text / --text), not "
                                + ("both" if self.data else "neither"))
        if self.data and (self.vocab_file or self.whole_word_mask or not self.lowercase
                          or self.word_segmenter not in (None, "none")
                          or self.masked_lm_prob != 0.15 or self.short_seq_prob != 0.1):
            raise TrainingError("vocab, cased, whole-word masking, word segmenter, masked LM and "
                                "short sequence probabilities apply to raw text (--text); "
                                "TFRecords carry the masks create-pretraining-data drew")
        if self.text and not self.vocab_file:
            raise TrainingError("dynamic masking from text needs the vocabulary (vocab_file / --vocab)")
        if self.text:
            validate_segmenter_option(self.word_segmenter, self.whole_word_mask)
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise TrainingError(f"masked LM probability must be in (0, 1), got {self.masked_lm_prob}")
        if self.mixed_precision not in MIXED_PRECISION_POLICIES:
            raise TrainingError(f"mixed precision must be one of bf16, fp16 (or none), got "
                                f"{self.mixed_precision!r}")
        if self.attention_init not in ATTENTION_INITS:
            raise TrainingError(f"unknown attention init {self.attention_init!r}; choose one of "
                                f"{list(ATTENTION_INITS)}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise TrainingError(f"unknown optimizer {self.optimizer!r}; choose one of "
                                f"{list(OPTIMIZER_NAMES)}")
        if self.batch_size < 1:
            raise TrainingError(f"batch size must be at least 1, got {self.batch_size}")
        if self.data_sharding not in DATA_SHARDING:
            raise TrainingError(f"--data-sharding must be one of {list(DATA_SHARDING)}, got "
                                f"{self.data_sharding!r}")
        if self.data_sharding == "files" and not self.data:
            raise TrainingError("--data-sharding files shards TFRecord files (--data); raw --text "
                                "is masked on the fly from one stream: use the default batch")
        if self.steps_per_execution < 1:
            raise TrainingError(f"--steps-per-execution must be at least 1, got "
                                f"{self.steps_per_execution}")
        if self.learning_rate is not None and not (self.learning_rate > 0
                                                   and math.isfinite(self.learning_rate)):
            raise TrainingError(f"--learning-rate must be a positive finite number, got "
                                f"{self.learning_rate}")
        if not 0.0 < self.adam_beta2 < 1.0 or not self.adam_epsilon > 0:
            raise TrainingError(f"--adam-beta2 must be in (0, 1) and --adam-epsilon positive, got "
                                f"{self.adam_beta2} and {self.adam_epsilon}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise TrainingError(f"--weight-decay must be a finite number >= 0, got "
                                f"{self.weight_decay}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise TrainingError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if fileio.lexists(self.output_dir) and not fileio.isdir(self.output_dir):
            raise TrainingError(f"--out {self.output_dir}: exists and is not a directory")
        if self.eval_every is not None and not self.eval_data:
            raise TrainingError("eval-every needs eval-data")
        if self.eval_text and not self.text:
            raise TrainingError("eval-text (held-out raw text) goes with --text; with TFRecords "
                                "(--data) give held-out records as --eval-data")
        if self.probe_batches < 0 or (self.probe_every is not None and self.probe_every < 1):
            raise TrainingError(f"probe batches must be >= 0 and probe interval >= 1, got "
                                f"{self.probe_batches} and {self.probe_every}")


def default_learning_rate(hidden_size: int) -> float:
    """Peak learning rate for a model of this width when none is given.

    google-research/bert pre-trains BERT-base (hidden 768) at 1e-4. Narrower models take larger
    steps: 1e-4 * (768 / hidden) ** 1.5, capped at 1e-3, so hidden 512 → 1.8e-4, 256 → 5.2e-4,
    128 and below → 1e-3. The cap is where a post-LN model of a few layers still leaves the
    unigram plateau within a few hundred steps instead of collapsing onto it (docs/results.md has
    the runs); the held-out MLM probe warns if a run collapses anyway."""
    return min(1e-3, 1e-4 * (768.0 / hidden_size) ** 1.5)


def resolve_schedule(config: PretrainingConfig) -> PretrainingConfig:
    """`config` with the learning rate and warmup filled in where they were left to default
    (what run.json records and a rerun is compared on)."""
    if config.learning_rate is not None and config.warmup_steps is not None:
        return config
    bert_config = _model_config(config)
    return dataclasses.replace(
        config,
        learning_rate=config.learning_rate or default_learning_rate(bert_config.hidden_size),
        warmup_steps=(config.warmup_steps if config.warmup_steps is not None
                      else max(1, config.total_steps // 10)))


def _data_shapes(config: PretrainingConfig) -> tuple:
    """(max_seq_length, max_predictions_per_seq): given, or read from the data's metadata.json
    (raw text: google's defaults, 128 and 20)."""
    if config.max_seq_length and config.max_predictions_per_seq:
        return config.max_seq_length, config.max_predictions_per_seq
    if config.text:
        return config.max_seq_length or 128, config.max_predictions_per_seq or 20
    first = sorted(tf.io.gfile.glob(config.data.split(",")[0].strip()))
    if not first:
        raise TrainingError(f"no training files match {config.data!r}")
    meta = read_metadata(os.path.dirname(first[0]))
    return (config.max_seq_length or int(meta["max_seq_length"]),
            config.max_predictions_per_seq or int(meta["max_predictions_per_seq"]))


def _model_config(config: PretrainingConfig) -> BertConfig:
    if isinstance(config.model_config, BertConfig):
        return config.model_config
    return BertConfig.from_json_file(config.model_config)


def _init_path(path: str) -> str:
    """A phase-one output directory means its `pretrained/` export."""
    exported = os.path.join(path, PRETRAINED_DIR)
    return exported if fileio.isdir(exported) else path


def build_pretrainer(bert_config: BertConfig, mixed_precision: str | None = None,
                     init_checkpoint: str | None = None,
                     attention_init: str = "random") -> BertPretrainer:
    """A `BertPretrainer` in the requested precision (build it inside `strategy.scope()`),
    fresh (`attention_init`: see PretrainingConfig) or with the weights of `init_checkpoint`
    (strict: every tensor must fit `bert_config`)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[mixed_precision])
    try:
        if init_checkpoint:
            return BertPretrainer.from_pretrained(_init_path(init_checkpoint), config=bert_config)
        model = BertPretrainer(BertEncoder(bert_config))
        if attention_init == "neighbours":
            apply_neighbour_init(model.encoder)
        return model
    finally:
        keras.mixed_precision.set_global_policy(previous)


def save_pretrained_atomic(model: BertPretrainer, directory: str) -> str:
    """`model.save_pretrained` into a staging directory that then replaces `directory` whole
    (`bert_tf.atomic.replaced_directory`: by rename locally, marker-last upload when remote)."""
    with replaced_directory(directory) as staging:
        model.save_pretrained(staging)
    return directory


# What defines a pre-training run (compared on a rerun), with the flag each is known by.
RECORD_KEYS = {
    "model_config": "--config (model config)", "data_sha256": "--data files (content sha256)",
    "text_sha256": "--text files (content sha256)", "vocab_sha256": "--vocab (content sha256)",
    "lowercase": "--cased (lowercase)", "whole_word_mask": "--whole-word-mask",
    "word_segmenter": "--word-segmenter",
    "masked_lm_prob": "--masked-lm-prob", "short_seq_prob": "--short-seq-prob",
    "total_steps": "--steps", "batch_size": "--batch-size", "max_seq_length": "--max-seq-length",
    "max_predictions_per_seq": "--max-predictions-per-seq", "learning_rate": "--learning-rate",
    "warmup_steps": "--warmup-steps", "end_learning_rate": "--end-learning-rate",
    "decay_power": "--decay-power", "optimizer": "--optimizer", "weight_decay": "--weight-decay",
    "clip_norm": "--clip-norm", "mixed_precision": "--mixed-precision",
    "grad_accum_steps": "--grad-accum-steps", "seed": "--seed",
    "init_checkpoint": "--init-checkpoint", "shuffle_buffer_size": "--shuffle-buffer",
    "adam_beta2": "--adam-beta2", "adam_epsilon": "--adam-epsilon",
    "attention_init": "--attention-init", "data_sharding": "--data-sharding (and workers)"}
DATA_SHARDING = ("batch", "files")
# Every name a pre-training run writes in OUT (what --overwrite may delete).
RUN_FILES = (run_record.RECORD_FILE, "checkpoints", "tensorboard", PRETRAINED_DIR, PROBE_FILE,
             ".worker-scratch")


def _matched_files(patterns: str | None, local: bool) -> list:
    """The files comma-separated globs match, in the order the data readers use them."""
    if not patterns:
        return []
    if local:   # --text: bert_tf.data.pretraining's expansion
        from bert_tf.data.pretraining import expand_input_files
        return expand_input_files([patterns])
    files = []
    for part in (p.strip() for p in patterns.split(",")):
        if part:
            files.extend(sorted(tf.io.gfile.glob(part)))
    return files


def pretraining_record(config: PretrainingConfig, bert_config: BertConfig, max_seq_length: int,
                       max_predictions: int) -> dict:
    """The run record of `config` (see `bert_tf.training.run_record`); hashes every data file."""
    data_files = _matched_files(config.data, local=False)
    if config.data and not data_files:
        raise TrainingError(f"no training files match {config.data!r}")
    text_files = _matched_files(config.text, local=True)
    defines = {k: getattr(config, k) for k in RECORD_KEYS if hasattr(config, k)}
    defines.update(
        model_config=bert_config.to_dict(), total_steps=config.total_steps,
        data_sha256=[run_record.file_sha256(f) for f in data_files],
        text_sha256=[run_record.file_sha256(f) for f in text_files],
        vocab_sha256=run_record.file_sha256(config.vocab_file) if config.vocab_file else None,
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions,
        init_checkpoint=fileio.abspath(config.init_checkpoint) if config.init_checkpoint
        else None,
        attention_init=None if config.init_checkpoint else config.attention_init,
        data_sharding=_sharding_record(config))
    if defines["data_sharding"] is None:   # the default: records of earlier releases match
        del defines["data_sharding"]
    assert set(defines) <= set(RECORD_KEYS)
    return run_record.make_record("pretrain", defines, {
        "data": data_files, "text": text_files, "vocab": config.vocab_file})


def _sharding_record(config: PretrainingConfig) -> str | None:
    """What fixes the data order besides the data: with "files", the number of workers (read
    from TF_CONFIG, before any strategy exists) decides which worker reads which files."""
    if config.data_sharding == "batch":
        return None
    try:
        workers = cluster_workers()
    except DistributionError:
        workers = 1     # create_strategy reports a malformed TF_CONFIG clearly, after this
    return f"files over {workers} worker(s)"


def _write_run_file(config: PretrainingConfig, bert_config: BertConfig, out: str, record: dict,
                    complete: bool = False) -> None:
    """run.json: the config's settings as earlier releases wrote them, the record, completion."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "model_config"}
    settings["model_config"] = bert_config.to_dict()
    run_record.write_run_file(out, record, complete=complete, **settings)


def _check_vocab(config: PretrainingConfig, bert_config: BertConfig) -> None:
    """--vocab (with --text) exists and fits the model's embedding table."""
    if not fileio.isfile(config.vocab_file):
        raise TrainingError(f"vocabulary file {config.vocab_file!r} does not exist")
    with fileio.open(config.vocab_file, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    if vocab_size > bert_config.vocab_size:
        raise TrainingError(f"{config.vocab_file} has {vocab_size} tokens but the model's "
                            f"vocab_size is {bert_config.vocab_size}")


def _training_dataset(config: PretrainingConfig, bert_config: BertConfig, max_seq_length: int,
                      max_predictions: int) -> tf.data.Dataset:
    """The endless, seeded stream of global batches: TFRecords, or raw text masked on the fly."""
    if not config.text:
        def records(input_context=None):
            return load_pretraining_dataset(
                config.data, config.batch_size, max_seq_length, max_predictions, shuffle=True,
                seed=config.seed, repeat=True, shuffle_buffer_size=config.shuffle_buffer_size,
                input_context=input_context)
        # "files": a function of the input pipeline (Trainer.fit distributes it per worker).
        return records if config.data_sharding == "files" else records()
    _check_vocab(config, bert_config)
    return dynamic_masking_dataset(
        [config.text], config.vocab_file, config.batch_size, max_seq_length, max_predictions,
        masked_lm_prob=config.masked_lm_prob, whole_word_mask=config.whole_word_mask,
        word_segmenter=config.word_segmenter, short_seq_prob=config.short_seq_prob,
        lowercase=config.lowercase, seed=config.seed,
        repeat=True, shuffle_buffer_size=config.shuffle_buffer_size)


def _probe(config: PretrainingConfig, max_seq_length: int,
           max_predictions: int) -> HeldOutMlmProbe | None:
    """The held-out MLM probe on fixed batches: eval text, eval records, or (said so in the log)
    a sample of the training data drawn apart from the training stream."""
    if config.probe_batches == 0:
        return None
    # Never the training dataset object itself: iterating it would advance its shuffle and change
    # the batches the run trains on. Without held-out data, a stream of the training data's own.
    if config.text:
        path = config.eval_text or config.text
        source = (f"held-out text {path}" if config.eval_text else
                  "a sample of the training text (pass --eval-text to hold out)")
        batches_from = dynamic_masking_dataset(
            [path], config.vocab_file, config.batch_size, max_seq_length,
            max_predictions, masked_lm_prob=config.masked_lm_prob,
            whole_word_mask=config.whole_word_mask, word_segmenter=config.word_segmenter,
            short_seq_prob=config.short_seq_prob, lowercase=config.lowercase,
            seed=config.seed + 1, repeat=True)
    else:
        path = config.eval_data or config.data
        source = (f"held-out records {path}" if config.eval_data else
                  "the first training records, unshuffled (pass --eval-data to hold out)")
        batches_from = load_pretraining_dataset(path, config.batch_size, max_seq_length,
                                                max_predictions, shuffle=False, repeat=True)
    batches = take_batches(batches_from, config.probe_batches)
    logger.info("MLM probe: %d batches of %s", len(batches), source)
    vocab_words = list(read_vocab(config.vocab_file)) if config.vocab_file else None
    return HeldOutMlmProbe(batches, config.probe_every or max(1, config.total_steps // 10),
                           config.total_steps, config.warmup_steps, vocab_words)


def _prepare(config: PretrainingConfig) -> tuple:
    """The checks before any work: settings, shapes, and the run record against OUT's.
    Returns (bert_config, (max_seq_length, max_predictions), record, state, old run.json)."""
    config.validate()
    bert_config = _model_config(config)
    max_seq_length, max_predictions = _data_shapes(config)
    if max_seq_length > bert_config.max_position_embeddings:
        raise TrainingError(f"max_seq_length {max_seq_length} exceeds the model's "
                            f"max_position_embeddings {bert_config.max_position_embeddings}")
    if config.text:
        _check_vocab(config, bert_config)
    if config.attention_init == "neighbours" and not config.init_checkpoint:
        try:
            check_neighbour_shape(bert_config.hidden_size, bert_config.num_attention_heads)
        except ValueError as e:
            raise TrainingError(f"--attention-init neighbours: {e}") from None
    record = pretraining_record(config, bert_config, max_seq_length, max_predictions)
    state, old = run_record.inspect_output(config.output_dir, record, RUN_FILES, config.overwrite,
                                           RECORD_KEYS)
    return bert_config, (max_seq_length, max_predictions), record, state, old


def setup_pretraining(config: PretrainingConfig, strategy=None, _prepared=None):
    """(trainer, dataset, eval dataset or None): everything `run_pretraining` runs, for reuse."""
    config.validate()
    config = resolve_schedule(config)
    bert_config, (max_seq_length, max_predictions), record, state, _ = \
        _prepared or _prepare(config)
    strategy = strategy or create_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % (replicas * config.grad_accum_steps):
        raise TrainingError(f"batch size {config.batch_size} must divide evenly into {replicas} "
                            f"replica(s) x {config.grad_accum_steps} micro-batch(es)")
    chief = is_chief(strategy)
    if state == "overwrite" and chief:
        run_record.clear_run(config.output_dir, RUN_FILES)
        logger.info("--overwrite: deleted the old run in %s", config.output_dir)
    try:   # a damaged state file is an error before anything is written
        resuming = bool(read_state(os.path.join(config.output_dir, "checkpoints")))
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    fileio.makedirs(config.output_dir, exist_ok=True)
    if chief:   # the record first: a run killed at any later point is verified on its rerun
        _write_run_file(config, bert_config, config.output_dir, record)
    # Same seed, same initial weights: a resumed run overwrites them from the checkpoint anyway.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_pretrainer(bert_config, config.mixed_precision,
                                 None if resuming else config.init_checkpoint,
                                 config.attention_init)
        optimizer = create_optimizer(config.optimizer, config.learning_rate, config.total_steps,
                                     config.warmup_steps, config.weight_decay,
                                     config.end_learning_rate, config.decay_power,
                                     epsilon=config.adam_epsilon, beta_2=config.adam_beta2)
    options = TrainingOptions(
        total_steps=config.total_steps, grad_accum_steps=config.grad_accum_steps,
        clip_norm=config.clip_norm, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, log_every=config.log_every, seed=config.seed,
        loss_scaling=config.mixed_precision == "fp16", xla=config.xla, progress=config.progress,
        steps_per_execution=config.steps_per_execution)
    dataset = _training_dataset(config, bert_config, max_seq_length, max_predictions)
    eval_dataset, callbacks = None, []
    if config.eval_data:
        eval_dataset = load_pretraining_dataset(config.eval_data, config.batch_size, max_seq_length,
                                                max_predictions, shuffle=False, repeat=False,
                                                drop_remainder=False)
        callbacks.append(PeriodicEvaluation(eval_dataset, config.eval_every or config.total_steps,
                                            steps=config.eval_steps))
    probe = _probe(config, max_seq_length, max_predictions)
    if probe is not None:
        callbacks.append(probe)
    trainer = Trainer(model, pretraining_losses, optimizer, strategy, config.output_dir, options,
                      callbacks)
    return trainer, dataset, eval_dataset


def run_pretraining(config: PretrainingConfig, strategy=None) -> TrainingResult:
    """Trains (resuming when OUT has checkpoints) and, when done, writes OUT/pretrained/ and marks
    run.json complete. A complete run is not redone: its result is returned, nothing written."""
    config.validate()
    config = resolve_schedule(config)
    prepared = _prepare(config)
    bert_config, _, record, state, old = prepared
    if state == "resume" and old.get("complete") is True:
        logger.info("%s: this run is already complete (run.json); nothing to do",
                    config.output_dir)
        latest = tf.train.latest_checkpoint(os.path.join(config.output_dir, "checkpoints"))
        return TrainingResult(config.total_steps, False, {}, latest)
    trainer, dataset, _ = setup_pretraining(config, strategy, _prepared=prepared)
    logger.info("pre-training on %d replica(s) (%s), global batch %d, %d steps",
                trainer.strategy.num_replicas_in_sync, resolve_strategy_name(config.strategy),
                config.batch_size, config.total_steps)
    result = trainer.fit(dataset, global_batch_size=config.batch_size)
    if trainer.is_chief and not result.interrupted:
        save_pretrained_atomic(trainer.model, os.path.join(config.output_dir, PRETRAINED_DIR))
        _write_run_file(config, bert_config, config.output_dir, record, complete=True)
    probes = [c for c in trainer.callbacks if isinstance(c, HeldOutMlmProbe)]
    if trainer.is_chief and probes and probes[0].results:
        _append_probe_history(os.path.join(config.output_dir, PROBE_FILE), probes[0].results)
    return result


def _append_probe_history(path: str, results) -> None:
    """OUT/probe.json: every probe of the run (a resumed run adds its own), step-ordered."""
    history = read_probe_history(path)
    steps = {r.step for r in results}
    history = [h for h in history if h["step"] not in steps]
    history += [{"step": r.step, **r.scalars(), "top_prediction": r.top_prediction,
                 "masked_positions": r.masked_positions} for r in results]
    write_json_atomic(path, sorted(history, key=lambda h: h["step"]))


def read_probe_history(path: str) -> list:
    """The probe results OUT/probe.json holds ([] when there is none)."""
    try:
        with fileio.open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def export_pretrained(output_dir: str, mixed_precision: str | None = None) -> str:
    """On demand: the latest checkpoint of a (running or finished) run → OUT/pretrained/."""
    run_file = os.path.join(output_dir, "run.json")
    try:
        with fileio.open(run_file, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        raise TrainingError(f"{output_dir} has no run.json: not a pre-training output "
                            "directory") from None
    try:
        latest = newest_sound_checkpoint(os.path.join(output_dir, "checkpoints"))
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    if latest is None:
        raise TrainingError(f"{output_dir}/checkpoints holds no checkpoint yet")
    model = build_pretrainer(BertConfig.from_dict(settings["model_config"], source=run_file),
                             mixed_precision)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return save_pretrained_atomic(model, os.path.join(output_dir, PRETRAINED_DIR))
