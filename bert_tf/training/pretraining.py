"""BERT pre-training (masked LM + next sentence prediction) on the generic `Trainer`.

`run_pretraining(PretrainingConfig(...))` is what `bert-tf pretrain` runs. Output directory:

    OUT/checkpoints/   tf.train checkpoints (model, optimizer, step = data position, seed, loss scale)
    OUT/tensorboard/   scalars: train/{loss,mlm_loss,nsp_loss,mlm_accuracy,nsp_accuracy,
                       learning_rate,examples_per_second,...}, eval/... with --eval-data
    OUT/pretrained/    the final model in HF BertForPreTraining layout (config.json +
                       model.safetensors): `BertPretrainer`/`BertEncoder`/`BertClassifier`
                       `.from_pretrained(OUT/pretrained)` and transformers read it
    OUT/run.json       the settings of the run

Data: TFRecords from `create-pretraining-data` (`data`: masks fixed when the records were written,
google-research/bert's static masking), or raw text (`text` + `vocab_file`: dynamic masking, as
RoBERTa does: sentence pairs and masks are drawn anew on every pass over the corpus by
`bert_tf.data.masking.dynamic_masking_dataset`, optionally whole-word). Both streams are a pure
function of `seed`, so resuming skips the batches already trained on and continues exactly.

Running the same command again resumes from the latest checkpoint. Phase two of BERT's recipe
(longer sequences) is another run into a new OUT with `init_checkpoint` = the phase-one OUT (or any
checkpoint `BertPretrainer.from_pretrained` reads): all weights are carried over, including every
trained position embedding, while the optimizer and the schedule start afresh.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from bert_tf.atomic import write_json_atomic
from bert_tf.config import BertConfig
from bert_tf.data.masking import dynamic_masking_dataset
from bert_tf.data.tfrecords import load_pretraining_dataset, read_metadata
from bert_tf.data.word_segmentation import validate_segmenter_option
from bert_tf.models import BertEncoder, BertPretrainer, pretraining_losses
from bert_tf.training.distribution import create_strategy, resolve_strategy_name
from bert_tf.training.optimization import OPTIMIZER_NAMES, create_optimizer
from bert_tf.training.trainer import (PeriodicEvaluation, Trainer, TrainingError,
                                      TrainingOptions, TrainingResult)

logger = logging.getLogger(__name__)

MIXED_PRECISION_POLICIES = {None: "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
PRETRAINED_DIR = "pretrained"


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
    learning_rate: float = 1e-4
    warmup_steps: int = 10000
    end_learning_rate: float = 0.0
    decay_power: float = 1.0
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    clip_norm: float | None = 1.0
    strategy: str = "auto"
    mixed_precision: str | None = None          # None | "bf16" | "fp16"
    xla: bool = False
    grad_accum_steps: int = 1
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    seed: int = 12345
    init_checkpoint: str | None = None
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
        if self.optimizer not in OPTIMIZER_NAMES:
            raise TrainingError(f"unknown optimizer {self.optimizer!r}; choose one of "
                                f"{list(OPTIMIZER_NAMES)}")
        if self.batch_size < 1:
            raise TrainingError(f"batch size must be at least 1, got {self.batch_size}")
        if self.eval_every is not None and not self.eval_data:
            raise TrainingError("eval-every needs eval-data")


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
    return exported if os.path.isdir(exported) else path


def build_pretrainer(bert_config: BertConfig, mixed_precision: str | None = None,
                     init_checkpoint: str | None = None) -> BertPretrainer:
    """A `BertPretrainer` in the requested precision (build it inside `strategy.scope()`),
    fresh or with the weights of `init_checkpoint` (strict: every tensor must fit `bert_config`)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[mixed_precision])
    try:
        if init_checkpoint:
            return BertPretrainer.from_pretrained(_init_path(init_checkpoint), config=bert_config)
        return BertPretrainer(BertEncoder(bert_config))
    finally:
        keras.mixed_precision.set_global_policy(previous)


def save_pretrained_atomic(model: BertPretrainer, directory: str) -> str:
    """`model.save_pretrained` into a temporary sibling, then renamed over `directory`."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-pretrained-", dir=parent)
    try:
        model.save_pretrained(tmp)
        if os.path.isdir(directory):
            old = tempfile.mkdtemp(prefix=".old-pretrained-", dir=parent)
            os.rmdir(old)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _write_run_file(config: PretrainingConfig, bert_config: BertConfig, path: str) -> None:
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "model_config"}
    settings["model_config"] = bert_config.to_dict()
    write_json_atomic(path, settings, default=str)


def _training_dataset(config: PretrainingConfig, bert_config: BertConfig, max_seq_length: int,
                      max_predictions: int) -> tf.data.Dataset:
    """The endless, seeded stream of global batches: TFRecords, or raw text masked on the fly."""
    if not config.text:
        return load_pretraining_dataset(config.data, config.batch_size, max_seq_length,
                                        max_predictions, shuffle=True, seed=config.seed,
                                        repeat=True, shuffle_buffer_size=config.shuffle_buffer_size)
    if not os.path.isfile(config.vocab_file):
        raise TrainingError(f"vocabulary file {config.vocab_file!r} does not exist")
    with open(config.vocab_file, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    if vocab_size > bert_config.vocab_size:
        raise TrainingError(f"{config.vocab_file} has {vocab_size} tokens but the model's "
                            f"vocab_size is {bert_config.vocab_size}")
    return dynamic_masking_dataset(
        [config.text], config.vocab_file, config.batch_size, max_seq_length, max_predictions,
        masked_lm_prob=config.masked_lm_prob, whole_word_mask=config.whole_word_mask,
        word_segmenter=config.word_segmenter, short_seq_prob=config.short_seq_prob,
        lowercase=config.lowercase, seed=config.seed,
        repeat=True, shuffle_buffer_size=config.shuffle_buffer_size)


def setup_pretraining(config: PretrainingConfig, strategy=None):
    """(trainer, dataset, eval dataset or None): everything `run_pretraining` runs, for reuse."""
    config.validate()
    bert_config = _model_config(config)
    max_seq_length, max_predictions = _data_shapes(config)
    if max_seq_length > bert_config.max_position_embeddings:
        raise TrainingError(f"max_seq_length {max_seq_length} exceeds the model's "
                            f"max_position_embeddings {bert_config.max_position_embeddings}")
    strategy = strategy or create_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % (replicas * config.grad_accum_steps):
        raise TrainingError(f"batch size {config.batch_size} must divide evenly into {replicas} "
                            f"replica(s) x {config.grad_accum_steps} micro-batch(es)")
    os.makedirs(config.output_dir, exist_ok=True)
    resuming = tf.train.latest_checkpoint(os.path.join(config.output_dir, "checkpoints")) is not None
    # Same seed, same initial weights: a resumed run overwrites them from the checkpoint anyway.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_pretrainer(bert_config, config.mixed_precision,
                                 None if resuming else config.init_checkpoint)
        optimizer = create_optimizer(config.optimizer, config.learning_rate, config.total_steps,
                                     config.warmup_steps, config.weight_decay,
                                     config.end_learning_rate, config.decay_power)
    options = TrainingOptions(
        total_steps=config.total_steps, grad_accum_steps=config.grad_accum_steps,
        clip_norm=config.clip_norm, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, log_every=config.log_every, seed=config.seed,
        loss_scaling=config.mixed_precision == "fp16", xla=config.xla, progress=config.progress)
    dataset = _training_dataset(config, bert_config, max_seq_length, max_predictions)
    eval_dataset, callbacks = None, []
    if config.eval_data:
        eval_dataset = load_pretraining_dataset(config.eval_data, config.batch_size, max_seq_length,
                                                max_predictions, shuffle=False, repeat=False,
                                                drop_remainder=False)
        callbacks.append(PeriodicEvaluation(eval_dataset, config.eval_every or config.total_steps,
                                            steps=config.eval_steps))
    trainer = Trainer(model, pretraining_losses, optimizer, strategy, config.output_dir, options,
                      callbacks)
    if trainer.is_chief:
        _write_run_file(config, bert_config, os.path.join(config.output_dir, "run.json"))
    return trainer, dataset, eval_dataset


def run_pretraining(config: PretrainingConfig, strategy=None) -> TrainingResult:
    """Trains (resuming when OUT has checkpoints) and, when done, writes OUT/pretrained/."""
    trainer, dataset, _ = setup_pretraining(config, strategy)
    logger.info("pre-training on %d replica(s) (%s), global batch %d, %d steps",
                trainer.strategy.num_replicas_in_sync, resolve_strategy_name(config.strategy),
                config.batch_size, config.total_steps)
    result = trainer.fit(dataset, global_batch_size=config.batch_size)
    if trainer.is_chief and not result.interrupted:
        save_pretrained_atomic(trainer.model, os.path.join(config.output_dir, PRETRAINED_DIR))
    return result


def export_pretrained(output_dir: str, mixed_precision: str | None = None) -> str:
    """On demand: the latest checkpoint of a (running or finished) run → OUT/pretrained/."""
    run_file = os.path.join(output_dir, "run.json")
    try:
        with open(run_file, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        raise TrainingError(f"{output_dir} has no run.json: not a pre-training output "
                            "directory") from None
    latest = tf.train.latest_checkpoint(os.path.join(output_dir, "checkpoints"))
    if latest is None:
        raise TrainingError(f"{output_dir}/checkpoints holds no checkpoint yet")
    model = build_pretrainer(BertConfig.from_dict(settings["model_config"], source=run_file),
                             mixed_precision)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return save_pretrained_atomic(model, os.path.join(output_dir, PRETRAINED_DIR))
