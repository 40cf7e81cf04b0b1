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
saves every `checkpoint_every` steps and at the end, and on SIGTERM saves and returns early. With
several workers, a SIGTERM to any of them stops all at the same step after one consistent save
(`_stop_agreed`), and a worker that dies (kill -9, a lost host) ends the others' runs with a
TrainingError naming the checkpoint to resume from, instead of leaving them waiting in a collective.
Each checkpoint is read back before it is listed and before an older one is deleted; the last
`keep_checkpoints` (default 3, at least 2 to survive damage) are kept, and a damaged newest one is
skipped on restore with a warning (`bert_tf.training.checkpoints`).
A run killed with SIGKILL resumes from its last checkpoint and, because data order and dropout
state are restored, ends with the weights of an uninterrupted run.

Only the chief (in multi-worker training) writes checkpoints to `model_dir`; other workers write
theirs to a scratch directory that is removed after each save, as `tf.distribute` requires every
worker to take part in saving.

For TPUs (and to cut the host round trip per step elsewhere): `steps_per_execution=K` runs up to K
steps inside one `tf.function` call (a while loop over the iterator). Checkpoints, logs, callbacks
and the SIGTERM check run between executions; an execution ends early at every step that needs
the weights of exactly that step (a log or checkpoint interval, a callback's `every_steps`, the
last step), so the weights, checkpoints and logs are those of K=1. `static_shapes=True` (implied
by a TPUStrategy) refuses a training dataset whose element shapes are not all known when the step
is traced ([global_batch, seq], ...), as XLA on TPUs needs: batch with drop_remainder and pad to
a fixed length.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import threading
import time
from typing import Callable, Mapping, Sequence

import tensorflow as tf

from bert_tf import fileio
from bert_tf.layers.dropout import seed_generator_states
from bert_tf.training.checkpoints import (CheckpointError, newest_sound_checkpoint,
                                          write_checkpoint)
from bert_tf.training.distribution import is_chief, worker_id, xla_supported

logger = logging.getLogger(__name__)

LossFn = Callable[[Mapping, Mapping], Mapping]
#: (model, inputs, training) -> outputs: how a step runs the model (default `model(inputs, ...)`)
ForwardFn = Callable[..., Mapping]

# What a collective raises on the surviving workers when a peer dies (connection refused,
# heartbeat timeout, aborted collective).
PEER_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
             tf.errors.AbortedError, tf.errors.CancelledError)


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
    # Up to this many steps per tf.function call (see the module docstring); results as with 1.
    steps_per_execution: int = 1
    # Refuse a dataset whose element shapes are not static (always on with a TPUStrategy).
    static_shapes: bool = False

    def validate(self) -> None:
        if self.total_steps < 1:
            raise TrainingError(f"total steps must be at least 1, got {self.total_steps}")
        if self.grad_accum_steps < 1:
            raise TrainingError(f"grad-accum-steps must be at least 1, got {self.grad_accum_steps}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise TrainingError(f"clip norm must be positive (or None for no clipping), got "
                                f"{self.clip_norm}")
        for name in ("checkpoint_every", "keep_checkpoints", "log_every", "loss_scale_growth_steps",
                     "steps_per_execution"):
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
    """Hooks called by `Trainer.fit` on every process (check `trainer.is_chief` before writing).

    With `steps_per_execution` > 1, `on_step_end` of the steps of one execution is called after
    it, when the model holds the weights of its last step. A callback that reads the model every
    N steps (evaluations) sets `every_steps = N`: executions then end at each multiple of N."""

    every_steps: int | None = None

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
                 callbacks: Sequence[Callback] = (), forward: ForwardFn | None = None,
                 auxiliary=None):
        """`forward(model, inputs, training)` replaces `model(inputs, training=training)` in the
        training and evaluation steps, for a caller that runs the same model another way (a
        task model on packed tokens; a student next to its teacher). Under `xla` it runs inside
        the compiled step, so its shapes must not depend on the data there.
        `auxiliary`: a built layer that `forward` uses, trained and checkpointed with the model
        but no part of it (a distillation projection): callbacks that save `model` save without
        it."""
        options.validate()
        if options.xla and not xla_supported(strategy):
            raise TrainingError(
                f"--xla is not supported with {strategy.num_replicas_in_sync} replicas on "
                f"{type(strategy).__name__} over CPUs; XLA needs one device, GPUs or TPUs")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.auxiliary = auxiliary
        self.forward = forward if forward is not None else \
            (lambda m, inputs, training: m(inputs, training=training))
        self.strategy, self.options, self.callbacks = strategy, options, list(callbacks)
        self.model_dir = fileio.abspath(model_dir)
        self.is_chief = is_chief(strategy)
        self._input_names = set(model.input) if isinstance(getattr(model, "input", None), dict) else None
        with strategy.scope():
            variables = self._trainable_variables()
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
        if auxiliary is not None:
            objects["auxiliary"] = auxiliary
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.checkpoint_dir = os.path.join(self.model_dir, "checkpoints")
        # tf.distribute needs every worker to take part in saving: non-chief workers write to a
        # scratch directory that is removed after each save.
        self._save_dir = self.checkpoint_dir if self.is_chief else \
            os.path.join(self.model_dir, ".worker-scratch", worker_id(strategy))
        self._writer = None
        self._train_step = None
        self._train_steps = None
        self._eval_step = None
        self._stop_requested = False
        # Several workers (MultiWorkerMirroredStrategy over a cluster): a stop request on one of
        # them must stop all at the same step, and a lost peer must end the run, not hang it.
        self.multi_worker = worker_id(strategy) != "local"

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
    def _trainable_variables(self) -> list:
        """What the optimizer updates: the model's trainable variables, then the auxiliary's."""
        extra = self.auxiliary.trainable_variables if self.auxiliary is not None else []
        return list(self.model.trainable_variables) + list(extra)

    def _gradients(self, inputs, targets):
        """One (micro-)batch on one replica → (gradients, metrics)."""
        variables = self._trainable_variables()
        with tf.GradientTape() as tape:
            outputs = self.forward(self.model, inputs, True)
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
        variables = self._trainable_variables()
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

    def train_steps_function(self):
        """The traced execution `fit` runs with `steps_per_execution` > 1 (built once):
        `steps(iterator, n)` runs `n` steps (an int32 scalar tensor, any value from 1 to
        `steps_per_execution` without retracing) in one call and returns each metric of each
        step, float32 [n]."""
        if self._train_steps is None:
            self._train_steps = self._make_train_steps()
        return self._train_steps

    def _one_step(self, iterator):
        """Graph of one optimizer step on the next global batch → its metrics (scalars)."""
        metrics = self.strategy.run(self._replica_step, args=(next(iterator),))
        self.step.assign_add(1)
        # Already all-reduced: every replica holds the same values.
        return tf.nest.map_structure(
            lambda m: self.strategy.experimental_local_results(m)[0], metrics)

    def _make_train_step(self):
        # No autograph: the step uses tf.while_loop/tf.cond itself, and converting the model's
        # Python (Keras internals included) would only cost tracing time.
        return tf.function(self._one_step, autograph=False)

    def _make_train_steps(self):
        single = self.train_step_function()

        @tf.function(autograph=False)
        def train_steps(iterator, num_steps):
            # The metrics' names and dtypes, from a trace of the one-step function (nothing of it
            # runs or enters this graph): the loop below holds one TensorArray [num_steps] per
            # metric, and tracing its body once keeps one copy of the step in the program.
            spec = single.get_concrete_function(iterator).structured_outputs
            names = sorted(spec)
            arrays = [tf.TensorArray(spec[name].dtype, size=num_steps, element_shape=[])
                      for name in names]

            def body(i, arrays):
                metrics = self._one_step(iterator)
                return i + 1, [a.write(i, metrics[name]) for a, name in zip(arrays, names)]

            _, arrays = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), arrays))
            return {name: a.stack() for name, a in zip(names, arrays)}
        return train_steps

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
            fileio.rmtree(self._save_dir, ignore_errors=True)
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
    def _stop_agreed(self) -> bool:
        """Whether this worker or any other was asked to stop (SIGTERM). Every worker calls this
        after each execution, in the same order, so the one-scalar all-reduce lines up; all of
        them then save the same step together and return (a preempted host stops the cluster
        with one consistent checkpoint, as PreemptionCheckpointHandler does)."""
        if not self.multi_worker:
            return self._stop_requested
        flag = float(self._stop_requested)   # 1 on a worker that got SIGTERM
        # One value per local replica (the flag), summed over every replica of every worker.
        values = self.strategy.experimental_distribute_values_from_function(
            lambda _: tf.constant(flag, tf.float32))
        requested = self.strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)
        return float(requested) > 0

    def request_stop(self, *_):
        """Asks `fit` to save and return after the current step (the SIGTERM handler)."""
        self._stop_requested = True

    def fit(self, dataset, global_batch_size: int | None = None) -> TrainingResult:
        """Trains until `options.total_steps`, resuming from the latest checkpoint.

        `dataset` must be the same, deterministic, endless sequence of global batches every time
        (e.g. seeded shuffling with `options.seed`): the batches of steps already done are skipped.
        It may instead be a function `input_context -> dataset of that input pipeline's batches`
        (`strategy.distribute_datasets_from_function`: each worker reads only its share of the
        files); then each pipeline skips the steps already done.
        `global_batch_size` (examples per step) is only used for the examples/s figure.
        """
        options = self.options
        restored = self.restore()
        start = int(self.step.numpy())
        if start >= options.total_steps:
            logger.info("already trained %d of %d steps", start, options.total_steps)
            return TrainingResult(start, False, {}, restored)
        per_pipeline = callable(dataset) and not isinstance(dataset, tf.data.Dataset)
        if options.static_shapes or isinstance(self.strategy, tf.distribute.TPUStrategy):
            check_static_shapes(dataset(tf.distribute.InputContext()) if per_pipeline
                                else dataset)
        per_execution = options.steps_per_execution
        if per_execution > 1:
            ends = [f"{name.replace('_', '-')} {getattr(options, name)}"
                    for name in ("log_every", "checkpoint_every")
                    if getattr(options, name) % per_execution]
            if ends:
                logger.warning("steps per execution %d: executions also end every %s steps, so "
                               "some run fewer steps; a multiple of %d avoids it", per_execution,
                               " and ".join(ends), per_execution)
        train = self.train_step_function() if per_execution == 1 else self.train_steps_function()
        if per_pipeline:
            iterator = iter(self.strategy.distribute_datasets_from_function(
                lambda context: dataset(context).skip(start)))
        else:
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
                    if per_execution == 1:
                        executed = [train(iterator)]
                    else:
                        count = self._execution_length(step)
                        stacked = {k: v.numpy() for k, v in
                                   train(iterator, tf.constant(count, tf.int32)).items()}
                        executed = [{k: v[i] for k, v in stacked.items()} for i in range(count)]
                except (StopIteration, tf.errors.OutOfRangeError):
                    raise TrainingError(f"the dataset ran out after {int(self.step.numpy())} "
                                        f"steps; training needs {options.total_steps} (use an "
                                        "endless, repeated dataset)") from None
                for metrics in executed:
                    step += 1
                    values = {k: float(v) for k, v in metrics.items()}
                    if not math.isfinite(values["loss"]) and self.loss_scale is None:
                        raise TrainingError(f"loss became {values['loss']} at step {step}; lower "
                                            "the learning rate or use fp16 loss scaling")
                    for k, v in values.items():
                        interval[k] = interval.get(k, 0.0) + v
                    interval_steps += 1
                    progress.update(1)
                    # Log and checkpoint steps end an execution (`_execution_length`): the model
                    # and optimizer hold this step's state here.
                    if step % options.log_every == 0 or step == options.total_steps:
                        elapsed = max(time.perf_counter() - interval_start, 1e-9)
                        logs = {k: v / interval_steps for k, v in interval.items()}
                        logs["learning_rate"] = float(self.optimizer.learning_rate)
                        logs["steps_per_second"] = interval_steps / elapsed
                        if global_batch_size:
                            logs["examples_per_second"] = \
                                interval_steps * global_batch_size / elapsed
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
                # Between executions only: the weights are those of the execution's last step.
                if self._stop_agreed():
                    by_peer = not self._stop_requested
                    self._stop_requested = True
                    if step % options.checkpoint_every != 0 and step != options.total_steps:
                        last_checkpoint = self.save()
                    logger.warning("stopped by SIGTERM%s at step %d; saved %s",
                                   " to another worker" if by_peer else "", step,
                                   last_checkpoint)
                    break
        except PEER_LOST as e:
            if not self.multi_worker:
                raise
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            # TF's message is a graph trace; the line that says why names the abort/connection.
            words = ("abort", "connect", "timeout", "heartbeat", "unavailable")
            first = next((line for line in lines if any(w in line.lower() for w in words)),
                         lines[0] if lines else "")
            raise TrainingError(
                f"another worker stopped or cannot be reached (step {step}; "
                f"{type(e).__name__}: {first[:300]}); the last checkpoint is "
                f"{last_checkpoint or 'none'}: rerun the same command on every worker to resume "
                "from it") from None
        finally:
            progress.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
        result = TrainingResult(step, self._stop_requested, logs, last_checkpoint)
        for callback in self.callbacks:
            callback.on_train_end(self, result)
        return result

    def _execution_length(self, step: int) -> int:
        """Steps the execution after `step` runs: up to `steps_per_execution`, ending at the next
        step whose exact weights are needed (log, checkpoint, a callback's `every_steps`, the
        last step)."""
        options = self.options
        end = min(step + options.steps_per_execution, options.total_steps)
        intervals = [options.log_every, options.checkpoint_every]
        intervals += [c.every_steps for c in self.callbacks if c.every_steps]
        for every in intervals:
            end = min(end, (step // every + 1) * every)
        return end - step

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, dataset: tf.data.Dataset, steps: int | None = None) -> dict:
        """Mean of the loss function's outputs over `dataset` (one pass, or `steps` batches),
        each batch weighted by its number of examples. Dropout is off."""
        if self._eval_step is None:
            def replica_eval(batch):
                inputs, targets = self.split_batch(batch)
                outputs = self.forward(self.model, inputs, False)
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


def _dynamic_dimensions(spec, path: str = "") -> list:
    """'path: shape' of every component of an element spec whose shape is not fully static."""
    if isinstance(spec, Mapping):
        return [d for k, v in spec.items() for d in _dynamic_dimensions(v, f"{path}[{k!r}]")]
    if isinstance(spec, (tuple, list)):
        return [d for i, v in enumerate(spec) for d in _dynamic_dimensions(v, f"{path}[{i}]")]
    if isinstance(spec, tf.TensorSpec):
        return [] if spec.shape.is_fully_defined() else [f"{path or 'element'}: {spec.shape}"]
    # Ragged or sparse components have data-dependent shapes by construction.
    return [f"{path or 'element'}: {type(spec).__name__}"]


def check_static_shapes(dataset: tf.data.Dataset) -> None:
    """Raises TrainingError unless every component of `dataset`'s elements has a static shape
    (e.g. [global_batch, seq]), which XLA on TPUs needs at trace time."""
    dynamic = _dynamic_dimensions(dataset.element_spec)
    if dynamic:
        raise TrainingError(
            "the training dataset's shapes are not static (" + ", ".join(dynamic) + "); TPUs "
            "(and static_shapes) need every dimension known when the step is traced: batch with "
            "drop_remainder=True and pad every batch to one fixed length (no length buckets)")


def _progress_bar(enabled: bool, start: int, total: int):
    import tqdm
    return tqdm.tqdm(total=total, initial=start, unit="step", disable=not enabled,
                     dynamic_ncols=True, mininterval=1.0)
