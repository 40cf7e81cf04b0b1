"""Optimizers and learning-rate schedules for BERT, with google-research/bert's semantics.

* `AdamWeightDecay` is google-research/bert's `AdamWeightDecayOptimizer`: Adam moments *without*
  bias correction, epsilon 1e-6, and decoupled weight decay added to the update
  (`update = m / (sqrt(v) + eps) + weight_decay * param`), skipped for LayerNorm and bias variables.
* `Lamb` (You et al., 2019, as in Model Garden / TF Addons): bias-corrected Adam direction plus
  weight decay, scaled per variable by the trust ratio `||param|| / ||update||`; the variables
  excluded from weight decay are also excluded from the layer-wise adaptation (ratio 1).
* `WarmupPolynomialDecay`: linear warmup from 0 to the peak over `warmup_steps`, then
  `peak * (1 - step / total_steps) ** power` (power 1 = google's linear decay) down to `end_lr`.
  Like google's, the decay is measured from step 0 and step 0 has learning rate 0.

Gradient clipping (global norm, 1.0 in BERT) is not done here but by the trainer, after gradients
are summed over replicas and micro-batches, so that it is the norm of the whole batch's gradient.
Variables are matched for exclusion by their Keras `path` (e.g.
`transformer_layer_0/attention_layer_norm/gamma`, `masked_lm/output_bias`).
"""

from __future__ import annotations

import re

import keras
from keras import ops

# Regexes searched in variable paths: LayerNorm scale/offset and every bias (google's list is
# ["LayerNorm", "layer_norm", "bias"]; our LayerNorm layers are named `*layer_norm`).
DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("layer_norm", "bias")
OPTIMIZER_NAMES = ("adamw", "lamb")


class OptimizationError(ValueError):
    """Bad optimizer or schedule settings (the message names the setting)."""


@keras.saving.register_keras_serializable(package="bert_tf")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * step / warmup_steps                               for step < warmup_steps
                = (peak - end_lr) * (1 - min(step, total) / total) ** power + end_lr   otherwise."""

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int = 0,
                 end_learning_rate: float = 0.0, power: float = 1.0):
        if peak_learning_rate <= 0:
            raise OptimizationError(f"learning rate must be positive, got {peak_learning_rate}")
        if total_steps < 1:
            raise OptimizationError(f"total steps must be at least 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise OptimizationError(f"warmup steps must be in [0, total steps={total_steps}], "
                                    f"got {warmup_steps}")
        if power <= 0:
            raise OptimizationError(f"decay power must be positive, got {power}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step, float(self.total_steps)) / float(self.total_steps)
        decayed = ((self.peak_learning_rate - self.end_learning_rate)
                   * ops.power(1.0 - progress, self.power) + self.end_learning_rate)
        if self.warmup_steps == 0:
            return decayed
        warmup = self.peak_learning_rate * step / float(self.warmup_steps)
        return ops.where(step < float(self.warmup_steps), warmup, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power}


class _AdamMomentsWithDecay(keras.optimizers.Optimizer):
    """What both BERT optimizers share: Adam's first/second moments, decoupled weight decay with
    exclusion by variable path (regex search), and their config. Subclasses write `update_step`."""

    def __init__(self, learning_rate, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if weight_decay_rate < 0:
            raise OptimizationError(f"weight decay must be non-negative, got {weight_decay_rate}")
        self.weight_decay_rate = float(weight_decay_rate)
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay)
        self._exclude_patterns = [re.compile(p) for p in self.exclude_from_weight_decay]
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def decays(self, variable) -> bool:
        """Whether weight decay (and, for LAMB, layer adaptation) applies to `variable`."""
        if self.weight_decay_rate == 0:
            return False
        path = getattr(variable, "path", None) or variable.name
        return not any(p.search(path) for p in self._exclude_patterns)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m = self.add_optimizer_variables(var_list, "m")
        self._v = self.add_optimizer_variables(var_list, "v")

    def _update_moments(self, gradient, variable):
        """m, v after this step's gradient (assigned in place); gradient cast to the variable's dtype."""
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        return m, v

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "weight_decay_rate": self.weight_decay_rate,
                       "exclude_from_weight_decay": list(self.exclude_from_weight_decay)})
        return config


@keras.saving.register_keras_serializable(package="bert_tf")
class AdamWeightDecay(_AdamMomentsWithDecay):
    """google-research/bert's AdamWeightDecayOptimizer (no bias correction, decoupled decay)."""

    def __init__(self, learning_rate=1e-4, name="adam_weight_decay", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        m, v = self._update_moments(gradient, variable)
        update = m / (ops.sqrt(v) + self.epsilon)
        if self.decays(variable):
            update = update + self.weight_decay_rate * variable
        self.assign_sub(variable, lr * update)


@keras.saving.register_keras_serializable(package="bert_tf")
class Lamb(_AdamMomentsWithDecay):
    """LAMB: bias-corrected Adam direction + decay, scaled by the layer-wise trust ratio."""

    def __init__(self, learning_rate=1e-3, name="lamb", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        m, v = self._update_moments(gradient, variable)
        m_hat = m / (1.0 - ops.power(self.beta_1, t))
        v_hat = v / (1.0 - ops.power(self.beta_2, t))
        update = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        if self.decays(variable):
            update = update + self.weight_decay_rate * variable
            weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
            update_norm = ops.sqrt(ops.sum(ops.square(update)))
            # Trust ratio 1 when either norm is 0 (fresh zeros, or no update at all).
            ratio = ops.where((weight_norm > 0) & (update_norm > 0),
                              weight_norm / ops.maximum(update_norm, 1e-30), 1.0)
            update = ratio * update
        self.assign_sub(variable, lr * update)


def create_optimizer(name: str = "adamw", learning_rate: float = 1e-4, total_steps: int = 1,
                     warmup_steps: int = 0, weight_decay_rate: float = 0.01,
                     end_learning_rate: float = 0.0, decay_power: float = 1.0,
                     epsilon: float = 1e-6, beta_1: float = 0.9, beta_2: float = 0.999):
    """The optimizer BERT trains with, on a `WarmupPolynomialDecay` schedule.

    Build it (and call `optimizer.build(model.trainable_variables)`) inside `strategy.scope()`.
    """
    schedule = WarmupPolynomialDecay(learning_rate, total_steps, warmup_steps,
                                     end_learning_rate, decay_power)
    kinds = {"adamw": AdamWeightDecay, "lamb": Lamb}
    if name not in kinds:
        raise OptimizationError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZER_NAMES)}")
    return kinds[name](learning_rate=schedule, weight_decay_rate=weight_decay_rate,
                       beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
