"""Training on tf.distribute: strategies, BERT's optimizers and schedules, the resumable loop."""

from bert_tf.training.distribution import STRATEGY_NAMES, DistributionError, create_strategy
from bert_tf.training.optimization import (AdamWeightDecay, Lamb, OptimizationError,
                                           WarmupPolynomialDecay, create_optimizer)
from bert_tf.training.trainer import (Callback, PeriodicEvaluation, Trainer, TrainingError,
                                      TrainingOptions, TrainingResult)

__all__ = ["STRATEGY_NAMES", "DistributionError", "create_strategy", "AdamWeightDecay", "Lamb",
           "OptimizationError", "WarmupPolynomialDecay", "create_optimizer", "Callback",
           "PeriodicEvaluation", "Trainer", "TrainingError", "TrainingOptions", "TrainingResult"]
