"""Is pre-training learning? Held-out masked-LM accuracy against the unigram baseline.

A BERT that has not learned to use context predicts the most frequent token of the corpus at every
masked position (the "unigram plateau": the MLM loss sits at the unigram entropy, the accuracy at the
share of the most frequent token, and the [CLS] vector is the same for every input). Training loss
alone does not show it, so `HeldOutMlmProbe` runs the model on a fixed set of held-out batches every
`every_steps` steps and at the end, and reports:

  mlm_accuracy          argmax prediction == label, over the real (weighted) masked positions
  unigram_accuracy      what always predicting the most frequent held-out label would score
  accuracy_ratio        mlm_accuracy / unigram_accuracy (the run has learned something when >> 1)
  top_prediction_share  share of predictions that are the model's single most frequent prediction
  distinct_predictions  how many different tokens the model predicts
  nsp_accuracy, nsp_majority   next-sentence accuracy and the majority-class rate it must beat

and warns once when the predictions are still collapsed onto one token halfway through the run or
later (top share >= 0.5 and accuracy below 1.5x the unigram baseline), saying what to change. An
early plateau is normal: small models leave it after a few hundred steps at their default rate.
"""

from __future__ import annotations

import collections
import dataclasses
import logging

import numpy as np
import tensorflow as tf

from bert_tf.training.trainer import Callback

logger = logging.getLogger(__name__)

COLLAPSE_TOP_SHARE = 0.5
COLLAPSE_RATIO = 1.5


@dataclasses.dataclass
class ProbeResult:
    step: int
    mlm_accuracy: float
    unigram_accuracy: float
    top_prediction: int
    top_prediction_share: float
    distinct_predictions: int
    nsp_accuracy: float
    nsp_majority: float
    masked_positions: int

    @property
    def accuracy_ratio(self) -> float:
        return self.mlm_accuracy / max(self.unigram_accuracy, 1e-9)

    @property
    def collapsed(self) -> bool:
        return (self.top_prediction_share >= COLLAPSE_TOP_SHARE
                and self.accuracy_ratio < COLLAPSE_RATIO)

    def scalars(self) -> dict:
        return {"mlm_accuracy": self.mlm_accuracy, "unigram_accuracy": self.unigram_accuracy,
                "accuracy_ratio": self.accuracy_ratio,
                "top_prediction_share": self.top_prediction_share,
                "distinct_predictions": float(self.distinct_predictions),
                "nsp_accuracy": self.nsp_accuracy, "nsp_majority": self.nsp_majority}

    def summary(self, token=str) -> str:
        return (f"held-out MLM accuracy {self.mlm_accuracy:.4f} vs unigram baseline "
                f"{self.unigram_accuracy:.4f} ({self.accuracy_ratio:.2f}x) over "
                f"{self.masked_positions} masked positions; {self.distinct_predictions} distinct "
                f"predictions, the most frequent {token(self.top_prediction)!r} "
                f"{self.top_prediction_share:.1%}; NSP accuracy {self.nsp_accuracy:.4f} vs majority "
                f"{self.nsp_majority:.4f}")


def take_batches(dataset: tf.data.Dataset, count: int) -> list:
    """The first `count` batches as numpy dicts (fixed once: every probe sees the same masks)."""
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(count)]


class HeldOutMlmProbe(Callback):
    """Probes a `BertPretrainer` on `batches` (dicts with the pre-training inputs and targets)."""

    def __init__(self, batches: list, every_steps: int, total_steps: int, warmup_steps: int = 0,
                 vocab_words=None, name: str = "heldout"):
        if not batches:
            raise ValueError("the held-out MLM probe needs at least one batch")
        self.batches, self.every_steps, self.name = batches, max(1, every_steps), name
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.vocab_words = vocab_words
        self.results: list = []
        self._warned = False
        self._predict = None

    def _token(self, token_id: int) -> str:
        if self.vocab_words is not None and 0 <= token_id < len(self.vocab_words):
            return self.vocab_words[token_id]
        return f"id {token_id}"

    def _predictions(self, trainer, batch):
        model = trainer.model
        if self._predict is None:
            @tf.function(reduce_retracing=True, autograph=False)
            def predict(inputs):
                outputs = model(inputs, training=False)
                return (tf.argmax(outputs["mlm_logits"], axis=-1, output_type=tf.int32),   # [b, p]
                        tf.argmax(outputs["nsp_logits"], axis=-1, output_type=tf.int32))   # [b]
            self._predict = predict
        inputs, _ = trainer.split_batch({k: tf.constant(v) for k, v in batch.items()})
        mlm, nsp = self._predict(inputs)
        return mlm.numpy(), nsp.numpy()

    def probe(self, trainer, step: int) -> ProbeResult:
        """Runs the probe now (on the chief's copy of the weights; outside any replica context)."""
        predictions, labels, nsp_correct, nsp_labels = [], [], 0, []
        with trainer.strategy.scope():
            for batch in self.batches:
                mlm, nsp = self._predictions(trainer, batch)
                real = np.asarray(batch["masked_lm_weights"]) > 0                           # [b, p]
                predictions.append(mlm[real])
                labels.append(np.asarray(batch["masked_lm_ids"])[real])
                truth = np.asarray(batch["next_sentence_labels"]).reshape(-1)
                nsp_correct += int((nsp == truth).sum())
                nsp_labels.append(truth)
        predictions, labels = np.concatenate(predictions), np.concatenate(labels)
        nsp_labels = np.concatenate(nsp_labels)
        top, top_count = collections.Counter(predictions.tolist()).most_common(1)[0]
        label_mode_count = collections.Counter(labels.tolist()).most_common(1)[0][1]
        return ProbeResult(
            step=step, mlm_accuracy=float((predictions == labels).mean()),
            unigram_accuracy=label_mode_count / len(labels), top_prediction=int(top),
            top_prediction_share=top_count / len(predictions),
            distinct_predictions=len(set(predictions.tolist())),
            nsp_accuracy=nsp_correct / len(nsp_labels),
            nsp_majority=max(float(nsp_labels.mean()), 1.0 - float(nsp_labels.mean())),
            masked_positions=len(labels))

    def _run(self, trainer, step):
        if self.results and self.results[-1].step == step:
            return
        result = self.probe(trainer, step)
        self.results.append(result)
        trainer.write_scalars(result.scalars(), step, prefix=self.name)
        logger.info("step %d %s", step, result.summary(self._token))
        # Every small BERT sits on the plateau for its first few hundred steps; only a run that is
        # still there halfway (or at the end) is stuck.
        stuck = step >= max(self.warmup_steps, self.total_steps // 2)
        if result.collapsed and stuck and not self._warned:
            self._warned = True
            logger.warning(
                "step %d of %d: masked-LM predictions have collapsed: %.0f%% of the held-out "
                "predictions are %r and the accuracy %.4f is only %.2fx the unigram baseline "
                "%.4f. The model is still on the unigram plateau (it ignores the context). Train "
                "longer (--steps), use the default learning rate for the model width (or raise a "
                "lower one toward 1e-3); if the loss rose or spiked instead, lower it. Check the "
                "vocabulary's [UNK] rate too (bert-tf vocab reports it).", step, self.total_steps,
                100 * result.top_prediction_share, self._token(result.top_prediction),
                result.mlm_accuracy, result.accuracy_ratio, result.unigram_accuracy)

    def on_step_end(self, trainer, step, logs):
        if trainer.is_chief and step % self.every_steps == 0:
            self._run(trainer, step)

    def on_train_end(self, trainer, result):
        if trainer.is_chief and not result.interrupted:
            self._run(trainer, result.step)
