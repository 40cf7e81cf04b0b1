"""A custom training loop on `tf.distribute`, generic over the task, that survives being killed.

The trainer takes a model, a loss function `(outputs, targets) -> {"loss": scalar, **metrics}` and a
`tf.data.Dataset` whose elements are *global* batches (one element = one optimizer step), either
`(inputs, targets)` pairs or flat dicts (keys that are model inputs go to the model, the rest to
the loss). One optimizer step:

1. each replica takes its share of the global batch [B / replicas, ...] and, with
   `grad_accum_steps=K`, cuts it into K micro-batches run one after another; gradients and metrics
   are averaged over them (so K micro-batches of b give the gradient of one batch of K·b when each
   micro-batch's loss is a mean with the same denominator, as for fixed-size batches);
2. gradients and metrics are averaged across replicas (an all-reduce), then clipped to a global
   norm — of the whole batch's gradient, as google-research/bert clips it;
3. the optimizer's per-variable update runs once per variable copy (cross-replica context). With
   fp16 loss scaling, a step whose gradients are not finite is skipped and the scale halved.

Checkpoints (`model_dir/checkpoints`, written by `bert_tf.training.checkpoints`) hold the model, the optimizer,
the dropout RNG state, the step (which is also the data position: resuming skips the `step` global
batches already consumed), the data seed and the loss scale. `fit` resumes from the latest checkpoint by itself,
saves every `checkpoint_every` steps and at the end, and on SIGTERM saves and returns early.
Each checkpoint is read back before it is listed and before an older one is deleted; the last
`keep_checkpoints` (default 3, at least 2 to survive damage) are kept, and a damaged newest one is
skipped on restore with a warning (`bert_tf.training.checkpoints`).
A run killed with SIGKILL resumes from its last checkpoint and, because data order and dropout
state are restored, ends with the weights of an uninterrupted run.

Only the chief (in multi-worker training) writes checkpoints to `model_dir`; other workers write
theirs to a scratch directory that is removed after each save, as `tf.distribute` requires every
worker to take part in saving.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import threading
import time
from typing import Callable, Mapping, Sequence

import tensorflow as tf

from bert_tf.layers.dropout import seed_generator_states
from bert_tf.training.checkpoints import (CheckpointError, newest_sound_checkpoint,
                                          write_checkpoint)
from bert_tf.training.distribution import is_chief, worker_id, xla_supported

logger = logging.getLogger(__name__)

LossFn = Callable[[Mapping, Mapping], Mapping]


class TrainingError(RuntimeError):
    """Bad trainer settings or a checkpoint that does not fit this run (the message says which)."""


@dataclasses.dataclass
class TrainingOptions:
    total_steps: int
    grad_accum_steps: int = 1
    clip_norm: float | None = 1.0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    seed: int = 0
    loss_scaling: bool = False          # dynamic loss scaling (for float16 compute)
    initial_loss_scale: float = 2.0 ** 15
    loss_scale_growth_steps: int = 2000
    xla: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.total_steps < 1:
            raise TrainingError(f"total steps must be at least 1, got {self.total_steps}")
        if self.grad_accum_steps < 1:
            raise TrainingError(f"grad-accum-steps must be at least 1, got {self.grad_accum_steps}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise TrainingError(f"clip norm must be positive (or None for no clipping), got "
                                f"{self.clip_norm}")
        for name in ("checkpoint_every", "keep_checkpoints", "log_every", "loss_scale_growth_steps"):
            if getattr(self, name) < 1:
                raise TrainingError(f"{name.replace('_', '-')} must be at least 1, got "
                                    f"{getattr(self, name)}")


@dataclasses.dataclass
class TrainingResult:
    step: int                # optimizer steps done in total (including earlier runs)
    interrupted: bool        # stopped early by SIGTERM (after saving)
    logs: dict               # metrics averaged over the last logging interval
    checkpoint: str | None   # the last checkpoint written or restored


class Callback:
    """Hooks called by `Trainer.fit` on every process (check `trainer.is_chief` before writing)."""

    def on_train_begin(self, trainer: "Trainer", step: int) -> None:
        pass

    def on_step_end(self, trainer: "Trainer", step: int, logs: dict) -> None:
        """`logs`: this step's metrics (Python floats, averaged over the global batch)."""

    def on_train_end(self, trainer: "Trainer", result: TrainingResult) -> None:
        pass


class PeriodicEvaluation(Callback):
    """Every `every_steps` steps (and at the end) evaluates on `dataset` and writes the metrics to
    TensorBoard under `<name>/`; `results` keeps `(step, metrics)`. A subclass may override
    `on_result` (e.g. to export the best model so far)."""

    def __init__(self, dataset: tf.data.Dataset, every_steps: int, steps: int | None = None,
                 name: str = "eval"):
        if every_steps < 1:
            raise TrainingError(f"evaluation interval must be at least 1 step, got {every_steps}")
        self.dataset, self.every_steps, self.steps, self.name = dataset, every_steps, steps, name
        self.results: list = []

    def _run(self, trainer, step):
        if self.results and self.results[-1][0] == step:
            return
        metrics = trainer.evaluate(self.dataset, steps=self.steps)
        self.results.append((step, metrics))
        trainer.write_scalars(metrics, step, prefix=self.name)
        logger.info("step %d %s: %s", step, self.name,
                    ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
        self.on_result(trainer, step, metrics)

    def on_step_end(self, trainer, step, logs):
        if step % self.every_steps == 0:
            self._run(trainer, step)

    def on_train_end(self, trainer, result):
        if not result.interrupted:
            self._run(trainer, result.step)

    def on_result(self, trainer: "Trainer", step: int, metrics: dict) -> None:
        pass


class DynamicLossScale(tf.Module):
    """fp16 loss scaling: the loss is multiplied by `scale` before differentiation; a non-finite
    gradient halves the scale (and the step is skipped), `growth_steps` finite steps double it."""

    def __init__(self, initial_scale: float, growth_steps: int):
        super().__init__(name="loss_scale")
        self.scale = tf.Variable(initial_scale, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.growth_steps = growth_steps

    def update(self, finite):
        """Cross-replica context: adjust after a step whose gradients were `finite` (bool)."""
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_steps)
        self.scale.assign(tf.where(grow, self.scale * 2.0,
                                   tf.where(finite, self.scale, self.scale * 0.5)))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)),
                                        self.good_steps + 1, tf.zeros_like(self.good_steps)))


class Trainer:
    """Trains `model` (built in `strategy.scope()`) with `optimizer` (a Keras optimizer whose
    `update_step` does the per-variable update, e.g. `bert_tf.training.optimization`'s)."""

    def __init__(self, model, loss_fn: LossFn, optimizer, strategy: tf.distribute.Strategy,
                 model_dir: str, options: TrainingOptions,
                 callbacks: Sequence[Callback] = ()):
        options.validate()
        if options.xla and not xla_supported(strategy):
            raise TrainingError(
                f"--xla is not supported with {strategy.num_replicas_in_sync} replicas on "
                f"{type(strategy).__name__} over CPUs; XLA needs one device, GPUs or TPUs")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.strategy, self.options, self.callbacks = strategy, options, list(callbacks)
        self.model_dir = os.path.abspath(model_dir)
        self.is_chief = is_chief(strategy)
        self._input_names = set(model.input) if isinstance(getattr(model, "input", None), dict) else None
        with strategy.scope():
            variables = model.trainable_variables
            if not variables:
                raise TrainingError("the model has no trainable variables (is it built?)")
            # Slots must be created under the strategy (a trap of custom loops).
            optimizer.build(variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.seed = tf.Variable(options.seed, dtype=tf.int64, trainable=False, name="data_seed")
            self.loss_scale = DynamicLossScale(options.initial_loss_scale,
                                               options.loss_scale_growth_steps) \
                if options.loss_scaling else None
        objects = {"model": model, "optimizer": optimizer, "step": self.step, "seed": self.seed}
        # Keras keeps dropout's RNG state in SeedGenerator variables that tf.train.Checkpoint does
        # not reach through the model; without them a resumed run would draw other dropout masks.
        rng_state = seed_generator_states(model)
        if rng_state:
            objects["rng_state"] = rng_state
        if self.loss_scale is not None:
            objects["loss_scale"] = self.loss_scale
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.checkpoint_dir = os.path.join(self.model_dir, "checkpoints")
        # tf.distribute needs every worker to take part in saving: non-chief workers write to a
        # scratch directory that is removed after each save.
        self._save_dir = self.checkpoint_dir if self.is_chief else \
            os.path.join(self.model_dir, ".worker-scratch", worker_id(strategy))
        self._writer = None
        self._train_step = None
        self._eval_step = None
        self._stop_requested = False

    # ------------------------------------------------------------------ batches
    def split_batch(self, batch):
        """A dataset element → (model inputs, loss targets)."""
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        if isinstance(batch, Mapping) and self._input_names is not None:
            inputs = {k: v for k, v in batch.items() if k in self._input_names}
            targets = {k: v for k, v in batch.items() if k not in self._input_names}
            return inputs, targets
        raise TrainingError("dataset elements must be (inputs, targets) pairs, or dicts for a model "
                            "with named (dict) inputs")

    def distribute(self, dataset: tf.data.Dataset):
        """Splits each global batch across replicas. Element-wise (DATA) sharding keeps the order of
        examples independent of the number of workers, which resuming relies on."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        options.deterministic = True
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    # ------------------------------------------------------------------ the step
    def _gradients(self, inputs, targets):
        """One (micro-)batch on one replica → (gradients, metrics)."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.model(inputs, training=True)
            results = self._check_results(self.loss_fn(outputs, targets))
            loss = results["loss"]
            if self.loss_scale is not None:
                loss = loss * self.loss_scale.scale
        grads = tape.gradient(loss, variables)
        dense = []
        for g, v in zip(grads, variables):
            # Embedding lookups give IndexedSlices; accumulate and all-reduce dense tensors.
            g = tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            if self.loss_scale is not None:
                g = g / self.loss_scale.scale
            dense.append(tf.cast(g, tf.float32))
        return dense, {k: tf.cast(v, tf.float32) for k, v in results.items()}

    @staticmethod
    def _check_results(results):
        if not isinstance(results, Mapping) or "loss" not in results:
            raise TrainingError("the loss function must return a dict with a scalar 'loss'")
        return results

    def _replica_step(self, batch):
        inputs, targets = self.split_batch(batch)
        k = self.options.grad_accum_steps
        gradients = tf.function(self._gradients, jit_compile=True, autograph=False) if self.options.xla \
            else self._gradients
        if k == 1:
            grads, metrics = gradients(inputs, targets)
        else:
            # [b_replica, ...] -> [K, b_replica / K, ...]: K micro-batches, run in a while loop so
            # that only one micro-batch's activations live at a time.
            def micro_batches(t):
                t = tf.convert_to_tensor(t)
                return tf.reshape(t, tf.concat([[k, -1], tf.shape(t)[1:]], axis=0))
            micro = tf.nest.map_structure(micro_batches, (inputs, targets))
            grads0, metrics0 = gradients(*tf.nest.map_structure(lambda t: t[0], micro))

            def body(i, grads, metrics):
                g, m = gradients(*tf.nest.map_structure(lambda t: t[i], micro))
                return (i + 1, [a + b for a, b in zip(grads, g)],
                        {name: metrics[name] + m[name] for name in metrics})

            _, grads, metrics = tf.while_loop(lambda i, *_: i < k, body,
                                              (tf.constant(1), grads0, metrics0))
            grads = [g / k for g in grads]
            metrics = {name: v / k for name, v in metrics.items()}
        context = tf.distribute.get_replica_context()
        grads = context.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
        metrics = context.all_reduce(tf.distribute.ReduceOp.MEAN, metrics)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        grad_norm = tf.linalg.global_norm(grads)
        if self.options.clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.options.clip_norm, use_norm=grad_norm)
        context.merge_call(self._apply_gradients, args=(grads, finite))
        metrics["grad_norm"] = grad_norm
        return metrics

    def _apply_gradients(self, strategy, grads, finite):
        """Cross-replica context: every replica holds the same (all-reduced) gradients."""
        variables = self.model.trainable_variables
        optimizer = self.optimizer

        def apply():
            learning_rate = optimizer.learning_rate  # the schedule at optimizer.iterations

            def update(variable, gradient):  # runs once per copy of the variable
                optimizer.update_step(gradient, variable, learning_rate)

            for g, v in zip(grads, variables):
                strategy.extended.update(v.value, update, args=(g,), group=False)
            optimizer.iterations.assign_add(1)
            return tf.constant(True)

        if self.loss_scale is None:
            apply()
            return
        finite = strategy.experimental_local_results(finite)[0]
        tf.cond(finite, apply, lambda: tf.constant(False))
        self.loss_scale.update(finite)

    def train_step_function(self):
        """The traced step `fit` runs (built once): `step(iterator)` takes the next global batch
        from an iterator over `distribute(dataset)`, trains on it and returns its metrics
        (scalar tensors). No checkpoints, logs or callbacks: for benchmarks and custom loops."""
        if self._train_step is None:
            self._train_step = self._make_train_step()
        return self._train_step

    def _make_train_step(self):
        # No autograph: the step uses tf.while_loop/tf.cond itself, and converting the model's
        # Python (Keras internals included) would only cost tracing time.
        @tf.function(autograph=False)
        def train_step(iterator):
            metrics = self.strategy.run(self._replica_step, args=(next(iterator),))
            self.step.assign_add(1)
            # Already all-reduced: every replica holds the same values.
            return tf.nest.map_structure(
                lambda m: self.strategy.experimental_local_results(m)[0], metrics)
        return train_step

    # ------------------------------------------------------------------ checkpoints
    def restore(self) -> str | None:
        """Restores the newest sound checkpoint in `model_dir/checkpoints`, if any (a damaged
        newer one is skipped with a warning; see `bert_tf.training.checkpoints`); returns its
        path."""
        try:
            latest = newest_sound_checkpoint(self.checkpoint_dir)
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
        if latest is None:
            return None
        seed_before = self.options.seed
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise TrainingError(f"checkpoint {latest} does not match this model/optimizer "
                                f"(different config or optimizer?): {e}") from None
        if int(self.seed.numpy()) != seed_before:
            raise TrainingError(f"checkpoint {latest} was written by a run with seed "
                                f"{int(self.seed.numpy())}, not {seed_before}: resuming with "
                                "another seed would change the data order; pass the same seed or "
                                "a fresh output directory")
        logger.info("resumed from %s at step %d", latest, int(self.step.numpy()))
        return latest

    def save(self) -> str:
        """Writes a checkpoint now (every worker must call it); the chief verifies it before
        older ones are deleted."""
        try:
            path = write_checkpoint(self.checkpoint, self._save_dir, int(self.step.numpy()),
                                    self.options.keep_checkpoints, verify=self.is_chief)
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
        if not self.is_chief:
            shutil.rmtree(self._save_dir, ignore_errors=True)
            return os.path.join(self.checkpoint_dir, os.path.basename(path))
        return path

    # ------------------------------------------------------------------ summaries
    def write_scalars(self, scalars: Mapping, step: int, prefix: str = "train") -> None:
        if not self.is_chief:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "tensorboard"))
        with self._writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(f"{prefix}/{name}", value)
        self._writer.flush()

    # ------------------------------------------------------------------ loop
    def request_stop(self, *_):
        """Asks `fit` to save and return after the current step (the SIGTERM handler)."""
        self._stop_requested = True

    def fit(self, dataset: tf.data.Dataset, global_batch_size: int | None = None) -> TrainingResult:
        """Trains until `options.total_steps`, resuming from the latest checkpoint.

        `dataset` must be the same, deterministic, endless sequence of global batches every time
        (e.g. seeded shuffling with `options.seed`): the batches of steps already done are skipped.
        `global_batch_size` (examples per step) is only used for the examples/s figure.
        """
        options = self.options
        restored = self.restore()
        start = int(self.step.numpy())
        if start >= options.total_steps:
            logger.info("already trained %d of %d steps", start, options.total_steps)
            return TrainingResult(start, False, {}, restored)
        train_step = self.train_step_function()
        iterator = iter(self.distribute(dataset.skip(start)))

        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGTERM, self.request_stop)
        self._stop_requested = False
        for callback in self.callbacks:
            callback.on_train_begin(self, start)
        progress = _progress_bar(options.progress and self.is_chief, start, options.total_steps)
        last_checkpoint, interval, interval_start, interval_steps = restored, {}, time.perf_counter(), 0
        logs, step = {}, start
        try:
            while step < options.total_steps:
                try:
                    metrics = train_step(iterator)
                except (StopIteration, tf.errors.OutOfRangeError):
                    raise TrainingError(f"the dataset ran out after {step} steps; training needs "
                                        f"{options.total_steps} (use an endless, repeated dataset)") \
                        from None
                step += 1
                values = {k: float(v) for k, v in metrics.items()}
                if not math.isfinite(values["loss"]) and self.loss_scale is None:
                    raise TrainingError(f"loss became {values['loss']} at step {step}; lower the "
                                        "learning rate or use fp16 loss scaling")
                for k, v in values.items():
                    interval[k] = interval.get(k, 0.0) + v
                interval_steps += 1
                progress.update(1)
                if step % options.log_every == 0 or step == options.total_steps:
                    elapsed = max(time.perf_counter() - interval_start, 1e-9)
                    logs = {k: v / interval_steps for k, v in interval.items()}
                    logs["learning_rate"] = float(self.optimizer.learning_rate)
                    logs["steps_per_second"] = interval_steps / elapsed
                    if global_batch_size:
                        logs["examples_per_second"] = interval_steps * global_batch_size / elapsed
                    if self.loss_scale is not None:
                        logs["loss_scale"] = float(self.loss_scale.scale.numpy())
                    self.write_scalars(logs, step)
                    progress.set_postfix({k: f"{logs[k]:.4g}" for k in
                                          ("loss", "examples_per_second") if k in logs})
                    interval, interval_start, interval_steps = {}, time.perf_counter(), 0
                if step % options.checkpoint_every == 0 or step == options.total_steps:
                    last_checkpoint = self.save()
                for callback in self.callbacks:
                    callback.on_step_end(self, step, values)
                if self._stop_requested:
                    if step % options.checkpoint_every != 0 and step != options.total_steps:
                        last_checkpoint = self.save()
                    logger.warning("stopped by SIGTERM at step %d; saved %s", step, last_checkpoint)
                    break
        finally:
            progress.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
        result = TrainingResult(step, self._stop_requested, logs, last_checkpoint)
        for callback in self.callbacks:
            callback.on_train_end(self, result)
        return result

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, dataset: tf.data.Dataset, steps: int | None = None) -> dict:
        """Mean of the loss function's outputs over `dataset` (one pass, or `steps` batches),
        each batch weighted by its number of examples. Dropout is off."""
        if self._eval_step is None:
            def replica_eval(batch):
                inputs, targets = self.split_batch(batch)
                outputs = self.model(inputs, training=False)
                results = self._check_results(self.loss_fn(outputs, targets))
                count = tf.cast(tf.shape(tf.nest.flatten(inputs)[0])[0], tf.float32)
                # An empty replica share (last partial batch) must add nothing, not NaN.
                weighted = {k: tf.where(count > 0, tf.cast(v, tf.float32) * count, 0.0)
                            for k, v in results.items()}
                context = tf.distribute.get_replica_context()
                return context.all_reduce(tf.distribute.ReduceOp.SUM, (weighted, count))

            @tf.function(reduce_retracing=True, autograph=False)
            def eval_step(batch):
                sums, count = self.strategy.run(replica_eval, args=(batch,))
                local = self.strategy.experimental_local_results
                return tf.nest.map_structure(lambda t: local(t)[0], (sums, count))
            self._eval_step = eval_step
        if steps is not None:
            dataset = dataset.take(steps)
        totals, examples = {}, 0.0
        for batch_sums_and_count in self._iterate(dataset):
            sums, count = batch_sums_and_count
            examples += float(count)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)
        if examples == 0:
            raise TrainingError("the evaluation dataset is empty")
        return {k: v / examples for k, v in totals.items()}

    def _iterate(self, dataset):
        iterator = iter(self.distribute(dataset))
        while True:
            try:
                optional = iterator.get_next_as_optional()
                if not optional.has_value():
                    return
                yield self._eval_step(optional.get_value())
            except tf.errors.OutOfRangeError:
                return


def _progress_bar(enabled: bool, start: int, total: int):
    import tqdm
    return tqdm.tqdm(total=total, initial=start, unit="step", disable=not enabled,
                     dynamic_ncols=True, mininterval=1.0)
