"""BertSpanLabeler: start/end logits per token for extractive QA (SQuAD 1.1 / 2.0)."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.layers import truncated_normal
from bert_tf.models.task import BertTaskModel


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSpanLabeler(BertTaskModel):
    """Outputs `start_logits`, `end_logits` [b, s] float32 (a Dense(2) on the sequence output, as in
    google-research/bert's run_squad.py; position 0 ([CLS]) doubles as "no answer" for SQuAD 2.0)."""

    def create_heads(self):
        self.span_dense = keras.layers.Dense(
            2, name="span_logits", dtype=self.encoder.dtype_policy,
            kernel_initializer=truncated_normal(self.encoder.config.initializer_range))

    def heads(self, inputs, rows, training=None):
        # rows: every position's, [b, s, h] (or packed [n, h])
        logits = ops.cast(self.span_dense(rows), "float32")                    # [..., 2]
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
