"""`finetune`: pre-trained encoder + task head, trained on a file, best eval checkpoint kept.

The run is the classic BERT recipe: AdamW (google's, weight decay 0.01 except LayerNorm/bias) with
linear warmup then linear decay to 0, global-norm clipping at 1.0, dropout as configured in the
checkpoint. Training goes through `bert_tf.training.Trainer` (any tf.distribute strategy, mixed
precision with fp16 loss scaling, XLA for the forward/backward pass and the evaluations with `xla`,
resumable checkpoints in OUT/checkpoints, TensorBoard scalars in
OUT/tensorboard, a progress bar). The eval file is scored with the task's real metric (accuracy,
seqeval entity F1, SQuAD F1) every `eval_every` steps (default: each epoch) and at the end; each
new best is saved as OUT/model.keras, so that file is the best checkpoint when the run ends.
`freeze_encoder` trains only the head (feature extraction); full fine-tuning is the default.
Batches are padded to `max_length` (static shapes); tasks whose loss ignores padding train on each
batch's real tokens (`bert_tf.tasks.base.packed_forward`: the same computation on fewer rows)
unless `pack` is off or the step is XLA-compiled.
When the run ends, OUT/curves.png shows its training loss, learning rate and evaluations
(`bert_tf.training.curves`, drawn from its TensorBoard scalars).

A run is immutable: OUT/run.json records what defines it (`bert_tf.training.run_record`: the
train/eval files' and the vocabulary's sha256, the labels, every hyperparameter and task option
in `RECORD_KEYS`), written before any other file. Rerunning into OUT with the same record resumes
(or, when task.json says the run is complete, returns its result without writing anything); any
difference is refused before any work, naming each one; `overwrite` deletes the old run first.
`strategy`, `xla`, `steps_per_execution` and `progress` are not part of the record (a run may
resume on other devices).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time

import keras
import tensorflow as tf

from bert_tf import fileio
from bert_tf.tasks import model_dir
from bert_tf.tasks.base import packed_forward, steps_per_epoch, train_dataset
from bert_tf.tasks.inference import run_inference
from bert_tf.tasks.registry import task_class
from bert_tf.training import Callback, Trainer, TrainingOptions, create_optimizer, create_strategy
from bert_tf.training import run_record
from bert_tf.training.checkpoints import read_state as read_checkpoint_state
from bert_tf.training.curves import CURVES_FILE, draw_curves

logger = logging.getLogger(__name__)

MIXED_PRECISION = {None: None, "float16": "mixed_float16", "bfloat16": "mixed_bfloat16",
                   "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}  # pretrain's short names too


class FinetuneError(ValueError):
    """Fine-tuning settings that cannot work (the message names the option)."""


@dataclasses.dataclass
class FinetuneOptions:
    task: str                       # "classify", "ner" or "squad"
    init: str                       # pre-trained checkpoint (any format bert_tf.weights reads)
    train: str
    out: str
    eval: str | None = None
    vocab: str | None = None        # default: vocab.txt next to (or inside) --init
    lowercase: bool = True
    max_length: int = 128
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.1             # fraction of the total steps
    weight_decay: float = 0.01
    seed: int = 0                   # head initialization, data order and (by default) dropout
    dropout_seed: int | None = None  # dropout masks alone (same head and order as `seed`)
    strategy: str = "auto"
    mixed_precision: str | None = None   # None, "float16" or "bfloat16"
    freeze_encoder: bool = False
    xla: bool = False               # XLA-compile the gradient step and the evaluations
    # Train on each batch's real tokens (`bert_tf.tasks.base.packed_forward`), for tasks whose loss
    # ignores padding (classify, pairs, regress, ner); without XLA only (data-dependent shapes).
    pack: bool = True
    steps_per_execution: int = 1    # training steps per tf.function call (same results)
    eval_every: int | None = None   # steps; default: once per epoch
    eval_batch_size: int = 64
    progress: bool = True
    task_settings: dict = dataclasses.field(default_factory=dict)
    overwrite: bool = False         # delete the run already in `out` (only a run's files) first
    # Distillation (`bert-tf distill`, `bert_tf.tasks.distillation`): with a teacher, the task,
    # labels, vocabulary and casing are the teacher's; `init` (or `student_layers` of the
    # teacher's layers) is the student.
    teacher: str | None = None      # a fine-tuned output directory
    student_layers: int | tuple | None = None   # a count, or the teacher's layers by index
    temperature: float = 2.0
    alpha: float = 0.5              # weight of the teacher's loss; 1 - alpha on the labels
    unlabeled: str | None = None    # texts the teacher labels (classify/regress/ner)
    augment: int = 0                # label-wise replacement versions of each sentence (ner)
    augment_rate: float = 0.3       # the probability that such a version replaces a word
    hidden_weight: float = 0.0      # hidden-state transfer (0: off)
    attention_weight: float = 0.0   # attention transfer (0: off)
    ensemble: tuple = ()            # more teachers (output directories) averaged with `teacher`

    def validate(self) -> None:
        if self.max_length < 8:
            raise FinetuneError(f"--max-length must be at least 8, got {self.max_length}")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):   # NaN fails both
            raise FinetuneError(f"--epochs must be a positive finite number, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise FinetuneError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise FinetuneError(f"--learning-rate must be a positive finite number, got "
                                f"{self.learning_rate}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise FinetuneError(f"--weight-decay must be a finite number >= 0, got "
                                f"{self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise FinetuneError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise FinetuneError(f"--mixed-precision must be bf16/bfloat16 or fp16/float16, got "
                                f"{self.mixed_precision!r}")
        if not 0 <= self.seed < 2 ** 32:   # numpy's legacy seeding, under keras' set_random_seed
            raise FinetuneError(f"--seed must be an integer from 0 to 2**32 - 1, got {self.seed}")
        if self.dropout_seed is not None and self.dropout_seed < 0:
            raise FinetuneError(f"--dropout-seed must be a non-negative integer, got "
                                f"{self.dropout_seed}")
        if self.steps_per_execution < 1:
            raise FinetuneError(f"--steps-per-execution must be at least 1, got "
                                f"{self.steps_per_execution}")
        if self.eval_every is not None and self.eval_every < 1:
            raise FinetuneError(f"--eval-every must be at least 1 step, got {self.eval_every}")
        if self.teacher is None and (self.init is None or self.task is None):
            raise FinetuneError("fine-tuning needs a task and --init")
        if self.ensemble and self.teacher is None:
            raise FinetuneError("--ensemble adds teachers to a --teacher (bert-tf distill)")
        for name in ("train", "eval", "unlabeled"):
            path = getattr(self, name)
            if path is not None and not fileio.isfile(path):
                raise FinetuneError(f"--{name} {path}: " + ("is a directory, expected a file"
                                    if fileio.isdir(path) else "no such file"))
        if fileio.lexists(self.out) and not fileio.isdir(self.out):
            raise FinetuneError(f"--out {self.out}: exists and is not a directory")


# What defines a fine-tuning run (compared on a rerun), with the flag each is known by.
RECORD_KEYS = {
    "task": "task", "init": "--init", "train_sha256": "--train (content sha256)",
    "eval_sha256": "--eval (content sha256)", "vocab_sha256": "--vocab (content sha256)",
    "labels": "labels (from --train)", "lowercase": "--cased (lowercase)",
    "max_length": "--max-length", "epochs": "--epochs", "batch_size": "--batch-size",
    "learning_rate": "--learning-rate", "warmup": "--warmup", "weight_decay": "--weight-decay",
    "seed": "--seed", "dropout_seed": "--dropout-seed", "mixed_precision": "--mixed-precision",
    "freeze_encoder": "--freeze-encoder", "eval_every": "--eval-every",
    "task_settings": "task options", "pack": "--no-pack"}
# Every name a fine-tuning run writes in OUT (what --overwrite may delete).
RUN_FILES = (run_record.RECORD_FILE, model_dir.MODEL_FILE, model_dir.LABELS_FILE,
             model_dir.VOCAB_FILE, model_dir.TASK_FILE, model_dir.HISTORY_FILE, "checkpoints",
             "tensorboard", ".worker-scratch", CURVES_FILE)


def finetune_record(options: "FinetuneOptions", task, vocab_path: str,
                    distillation=None) -> dict:
    """The run record (see `bert_tf.training.run_record`) of `options` with its built `task`
    (a distillation run's record has the `DISTILL_KEYS` too)."""
    defines = {
        "task": task.name, "init": fileio.abspath(options.init) if options.init else None,
        "train_sha256": run_record.file_sha256(options.train),
        "eval_sha256": run_record.file_sha256(options.eval) if options.eval else None,
        "vocab_sha256": run_record.file_sha256(vocab_path),
        "labels": list(task.label_names), "lowercase": options.lowercase,
        "max_length": options.max_length, "epochs": float(options.epochs),
        "batch_size": options.batch_size, "learning_rate": float(options.learning_rate),
        "warmup": float(options.warmup), "weight_decay": float(options.weight_decay),
        "seed": options.seed, "dropout_seed": options.dropout_seed,
        "mixed_precision": MIXED_PRECISION[options.mixed_precision],   # bf16 == bfloat16
        "freeze_encoder": options.freeze_encoder, "eval_every": options.eval_every,
        "task_settings": task.settings(), "pack": options.pack}
    assert set(defines) == set(RECORD_KEYS)
    files = {"train": fileio.abspath(options.train), "vocab": fileio.abspath(vocab_path),
             "eval": fileio.abspath(options.eval) if options.eval else None}
    if distillation is None:
        return run_record.make_record("finetune", defines, files)
    files.update(teacher=fileio.abspath(options.teacher),
                 unlabeled=fileio.abspath(options.unlabeled) if options.unlabeled else None)
    if options.ensemble:
        files["ensemble"] = [fileio.abspath(path) for path in options.ensemble]
    return run_record.make_record("distill", {**defines, **distillation.record(options.unlabeled)},
                                  files)


@dataclasses.dataclass
class FinetuneResult:
    out: str
    best_step: int | None
    metrics: dict           # the best eval metrics ({} without an eval file)
    history: list           # [(step, metrics)] of every evaluation
    train_seconds: float
    steps: int
    interrupted: bool = False   # stopped by SIGTERM after saving a checkpoint: rerun to resume


def find_vocab(init: str, vocab: str | None) -> str:
    if vocab is not None:
        if not fileio.isfile(vocab):
            raise FinetuneError(f"--vocab {vocab}: no such file")
        return vocab
    folder = init if fileio.isdir(init) else os.path.dirname(fileio.abspath(init))
    for name in ("vocab.txt", os.path.join("assets", "vocab.txt")):
        if fileio.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FinetuneError(f"no vocab.txt next to --init {init}; pass --vocab")


def _scalars(values: dict) -> dict:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}


class BestCheckpoint(Callback):
    """Scores the eval set with the task's metric every `every_steps` and at the end, and saves
    the model as OUT/model.keras whenever the metric beats the best so far (ties keep the earlier)."""

    def __init__(self, task, records, out_dir: str, every_steps: int, batch_size: int,
                 jit_compile: bool = False):
        self.task, self.records = task, records
        self.out_dir, self.every_steps, self.batch_size = out_dir, every_steps, batch_size
        self.jit_compile = jit_compile
        self.history_path = os.path.join(out_dir, model_dir.HISTORY_FILE)
        self.history, self.best = [], None   # best: (step, metrics)
        # Resuming (checkpoints exist): keep what earlier runs found, so that a worse later model
        # does not replace the best one, and a finished run keeps its numbers.
        if fileio.isdir(os.path.join(out_dir, "checkpoints")) and fileio.exists(self.history_path):
            saved = model_dir.read_json(self.history_path)
            self.history = [tuple(x) for x in saved["history"]]
            self.best = tuple(saved["best"]) if saved.get("best") else None

    def on_train_begin(self, trainer, step):
        # A run killed (-9) between a checkpoint and an evaluation leaves the history out of step
        # with the checkpoint it resumes from: evaluations of steps after it are redone (drop
        # them, or they would be listed twice), and one due at the restored step itself may never
        # have run (run it now: the weights are that step's).
        if any(s > step for s, _ in self.history):
            self.history = [(s, m) for s, m in self.history if s <= step]
            self.best = None
            for entry in self.history:
                if self._beats_best(entry[1]):
                    self.best = entry
        if step > 0 and step % self.every_steps == 0 and step not in {s for s, _ in self.history}:
            self._evaluate(trainer, step)

    def _beats_best(self, scores) -> bool:
        """Strictly better than the best so far: ties keep the earlier model."""
        return self.best is None or scores[self.task.metric] > self.best[1][self.task.metric]

    def on_step_end(self, trainer, step, logs):
        if step % self.every_steps == 0:
            self._evaluate(trainer, step)

    def on_train_end(self, trainer, result):
        if not result.interrupted and (not self.history or self.history[-1][0] != result.step):
            self._evaluate(trainer, result.step)

    def _evaluate(self, trainer, step):
        if not trainer.is_chief:
            return
        # The same inference path as `bert-tf predict` and the exported SavedModel.
        decoded = run_inference(self.task, trainer.model, self.records, self.batch_size,
                                jit_compile=self.jit_compile)
        scores = self.task.score(self.records, decoded)
        trainer.write_scalars(_scalars(scores), step, prefix="eval")
        self.history.append((step, scores))
        logger.info("step %d eval %s=%.4f", step, self.task.metric, scores[self.task.metric])
        if self._beats_best(scores):
            self.best = (step, scores)
            model_dir.save_model_atomic(trainer.model, self.out_dir)
        model_dir.write_json_atomic(self.history_path, {"history": self.history,
                                                        "best": list(self.best)})


def completed_result(out: str) -> FinetuneResult:
    """The result of the complete run in OUT (task.json written), read back; nothing written."""
    task = model_dir.read_json(os.path.join(out, model_dir.TASK_FILE))
    history_path = os.path.join(out, model_dir.HISTORY_FILE)
    history = [tuple(x) for x in model_dir.read_json(history_path)["history"]] \
        if fileio.exists(history_path) else []
    return FinetuneResult(out, task.get("best_step"), task.get("metrics", {}), history, 0.0,
                          int(task.get("steps", 0)))


class FinalModel(Callback):
    """Without an eval file, the final model is the one kept."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_train_end(self, trainer, result):
        if trainer.is_chief and not result.interrupted:
            model_dir.save_model_atomic(trainer.model, self.out_dir)


def finetune(options: FinetuneOptions) -> FinetuneResult:
    """Runs one fine-tuning job end to end and writes the output directory (see `bert_tf.tasks`)."""
    from bert_tf.layers import reseed_dropout
    from bert_tf.text import BertTokenizer
    from bert_tf.text.vocabulary import read_vocabulary
    from bert_tf.models.pretrained import load_encoder

    options.validate()
    distillation = None
    if options.teacher is not None:
        from bert_tf.tasks.distillation import DISTILL_KEYS, Distillation
        distillation = Distillation.prepare(options)
        task = distillation.task(options.max_length)
        tokenizer, vocab_path = task.tokenizer, distillation.vocab_path
        vocabulary = tokenizer.get_vocabulary()
        if options.init is not None:
            distillation.check_student_vocab(options.init, find_vocab(options.init, options.vocab))
        options = dataclasses.replace(options, lowercase=tokenizer.lowercase, task=task.name,
                                      task_settings=task.settings())
    else:
        cls = task_class(options.task)
        vocab_path = find_vocab(options.init, options.vocab)
        vocabulary = read_vocabulary(vocab_path)
        tokenizer = BertTokenizer(vocabulary, lowercase=options.lowercase,
                                  sequence_length=options.max_length)
        labels = cls.read_labels(options.train, **options.task_settings)
        task = cls(tokenizer, labels, **options.task_settings)
    # Before any work: a rerun into OUT must be the same run (or --overwrite).
    record = finetune_record(options, task, vocab_path, distillation)
    state, _ = run_record.inspect_output(
        options.out, record, RUN_FILES, options.overwrite,
        RECORD_KEYS if distillation is None else {**RECORD_KEYS, **DISTILL_KEYS})
    if state == "resume" and fileio.exists(os.path.join(options.out, model_dir.TASK_FILE)):
        logger.info("%s: this run is already complete (task.json); nothing to do", options.out)
        return completed_result(options.out)
    if state == "resume":   # a damaged checkpoint state file: an error before anything is written
        read_checkpoint_state(os.path.join(options.out, "checkpoints"))
    if distillation is None:
        train_records = task.read(options.train)
    else:
        from bert_tf.tasks.distillation import read_training_records
        train_records = read_training_records(task, options.train, options.teacher, task.name)
        train_records = distillation.augmented(task, train_records, options.seed)
    train_features = task.encode(train_records, training=True)
    if distillation is not None:   # the teacher's answers as targets, computed once
        train_features = distillation.training_features(task, train_features, options.unlabeled,
                                                        options.eval_batch_size)
    eval_records = None
    if options.eval is not None:
        eval_records = task.read(options.eval)
    per_epoch = steps_per_epoch(len(train_features), options.batch_size)
    total_steps = max(1, math.ceil(per_epoch * options.epochs))
    warmup_steps = int(options.warmup * total_steps)
    logger.info("%s: %d training features, %d steps/epoch, %d steps (%d warmup)", options.task,
                len(train_features), per_epoch, total_steps, warmup_steps)

    previous_policy = keras.mixed_precision.global_policy()
    try:
        if options.mixed_precision:
            keras.mixed_precision.set_global_policy(MIXED_PRECISION[options.mixed_precision])
        keras.utils.set_random_seed(options.seed)  # head initialization and dropout
        strategy = create_strategy(options.strategy)
        with strategy.scope():
            model = task.build_model(load_encoder(options.init)) if distillation is None else \
                distillation.build_student(task, options.init)
            if options.dropout_seed is not None:
                reseed_dropout(model, options.dropout_seed)
            if options.freeze_encoder:
                model.encoder.trainable = False
        _check_fits_model(model.encoder.config, options, vocab_path, len(vocabulary))
        loss = task.loss if distillation is None else distillation.loss(task)
        # Nothing is written before this point.
        if state == "overwrite":
            run_record.clear_run(options.out, RUN_FILES)
            logger.info("--overwrite: deleted the old run in %s", options.out)
        fileio.makedirs(options.out, exist_ok=True)
        run_record.write_run_file(options.out, record, settings={
            k: getattr(options, k) for k in ("strategy", "xla", "progress",
                                             "steps_per_execution")})
        model_dir.write_labels(options.out, task.label_names)
        model_dir.write_vocab(options.out, tokenizer.get_vocabulary())
        with strategy.scope():
            optimizer = create_optimizer("adamw", options.learning_rate, total_steps, warmup_steps,
                                         options.weight_decay)
        if options.eval is not None:
            selector = BestCheckpoint(task, eval_records, options.out,
                                      options.eval_every or per_epoch, options.eval_batch_size,
                                      jit_compile=options.xla)
        else:
            selector = FinalModel(options.out)
        # ~100 points on the curves; a multiple of steps_per_execution, as a log step ends an
        # execution.
        per_execution = options.steps_per_execution
        log_every = per_execution * math.ceil(max(1, min(50, total_steps // 100)) / per_execution)
        forward, auxiliary = packed_forward if packs(options, task, strategy) else None, None
        if distillation is not None:
            # With hidden/attention transfer the teacher runs next to the student (unpacked), and
            # a narrower student's projection trains and checkpoints with it.
            forward, auxiliary = distillation.forward(forward), distillation.projection
        trainer = Trainer(model, loss, optimizer, strategy, options.out, TrainingOptions(
            total_steps=total_steps, seed=options.seed, checkpoint_every=per_epoch,
            log_every=log_every, keep_checkpoints=2,
            loss_scaling=MIXED_PRECISION[options.mixed_precision] == "mixed_float16",
            xla=options.xla, progress=options.progress, steps_per_execution=per_execution),
            callbacks=[selector], forward=forward, auxiliary=auxiliary)
        started = time.perf_counter()
        result = trainer.fit(train_dataset(train_features, options.batch_size, options.seed),
                             global_batch_size=options.batch_size)
        seconds = time.perf_counter() - started
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    best_step, best_metrics, history = None, {}, []
    if isinstance(selector, BestCheckpoint):
        history = selector.history
        if selector.best is not None:
            best_step, best_metrics = selector.best
    if not result.interrupted and trainer.is_chief:
        # The run's pictures before task.json, which marks the directory complete.
        try:
            draw_curves(options.out, task.metric if options.eval is not None else None,
                        best_step, title=f"bert-tf finetune {options.task}: "
                                         f"{os.path.basename(fileio.abspath(options.out))}")
        except Exception as error:  # a picture must never fail a finished run
            logger.warning("could not draw %s: %s: %s", CURVES_FILE, type(error).__name__, error)
    if not result.interrupted:
        model_dir.write_task(options.out, {
            "task": options.task, "max_length": options.max_length, "lowercase": options.lowercase,
            "task_settings": task.settings(), "metric": task.metric, "metrics": best_metrics,
            "best_step": best_step, "steps": result.step,
            "init": fileio.abspath(options.init) if options.init else None,
            "hyperparameters": {k: getattr(options, k) for k in (
                "epochs", "batch_size", "learning_rate", "warmup", "weight_decay", "seed",
                "dropout_seed", "strategy", "mixed_precision", "freeze_encoder", "xla")},
            **({} if distillation is None else {"distillation": distillation.summary()})})
    return FinetuneResult(options.out, best_step, best_metrics, history, seconds, result.step,
                          result.interrupted)


def packs(options: FinetuneOptions, task, strategy=None) -> bool:
    """Whether the run trains on packed tokens: asked for, without XLA (a TPU compiles every
    step with it), and a task whose loss ignores padding positions (SQuAD's span loss scores
    every position; embed's inputs are [b, k, t])."""
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    return (options.pack and not options.xla and not on_tpu
            and getattr(task, "trains_packed", False))


def _check_fits_model(config, options: FinetuneOptions, vocab_path: str, vocab_size: int):
    source = f"--init {options.init}" if options.init else f"--teacher {options.teacher}"
    if options.max_length > config.max_position_embeddings:
        raise FinetuneError(f"--max-length {options.max_length} exceeds the "
                            f"{config.max_position_embeddings} positions of the model at "
                            f"{source} (max_position_embeddings)")
    if vocab_size != config.vocab_size:
        raise FinetuneError(f"--vocab {vocab_path} has {vocab_size} tokens but the model at "
                            f"{source} has vocab_size {config.vocab_size}")


def evaluate(directory: str, data: str, batch_size: int = 64, report_dir: str | None = None,
             title: str | None = None) -> dict:
    """Scores a fine-tuned model directory on a labeled file with the task's metric, on the
    answers of the task's one inference path (what predict and the exports answer).

    With `report_dir`, also writes the task's report there: report.json (the scores and their
    breakdown: confusion matrix and per-class scores, per entity type, by answer length,
    recall@k) and its charts as PNGs (`task.report`); each file is written atomically."""
    if batch_size < 1:
        raise FinetuneError(f"--batch-size must be at least 1, got {batch_size}")
    if report_dir is not None and fileio.exists(report_dir) and not fileio.isdir(report_dir):
        raise FinetuneError(f"--report {report_dir}: exists and is not a directory")
    loaded = model_dir.FinetunedModel.load(directory)
    records = loaded.task.read(data)
    if len(records) == 0:
        raise FinetuneError(f"{data}: no records to score")
    decoded = run_inference(loaded.task, loaded.model, records, batch_size)
    scores = loaded.task.score(records, decoded)
    if report_dir is not None:
        from bert_tf.plots import write_chart
        title = title or f"{os.path.basename(fileio.abspath(directory))} on " \
                         f"{os.path.basename(data)}"
        report, charts = loaded.task.report(records, decoded, scores, title)
        fileio.makedirs(report_dir, exist_ok=True)
        model_dir.write_json_atomic(os.path.join(report_dir, "report.json"),
                                    {"model": fileio.abspath(directory),
                                     "data": fileio.abspath(data), **report})
        for name, draw in charts.items():
            write_chart(os.path.join(report_dir, name), draw, size=(7.0, 5.0))
    return scores


def predict(directory: str, data: str | None = None, lines=None, batch_size: int = 64) -> list:
    """Predictions (one dict per record) for an unlabeled file, or for raw input lines: the task's
    one inference path (`bert_tf.tasks.inference`), the one the SavedModel exports."""
    if batch_size < 1:
        raise FinetuneError(f"--batch-size must be at least 1, got {batch_size}")
    loaded = model_dir.FinetunedModel.load(directory)
    task = loaded.task
    records = task.read(data, labeled=False) if data is not None else task.records_from_texts(lines)
    if len(records) == 0:
        raise FinetuneError(f"{data or '<stdin>'}: no input records")
    return task.rows(records, run_inference(task, loaded.model, records, batch_size))
