"""BertTokenClassifier: per-token logits on the sequence output (NER, tagging)."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.models.task import BertTaskModel


@keras.saving.register_keras_serializable(package="bert_tf")
class BertTokenClassifier(BertTaskModel):
    """Output `logits` [b, s, num_labels] float32."""

    def __init__(self, encoder, num_labels: int, dropout: float | None = None, **kwargs):
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
        self.num_labels = num_labels
        self.dropout_rate = encoder.config.hidden_dropout_prob if dropout is None else dropout
        super().__init__(encoder, **kwargs)

    def build_heads(self, inputs, encoder_outputs):
        policy = self.encoder.dtype_policy
        self.head_dropout = keras.layers.Dropout(self.dropout_rate, dtype=policy)
        self.classifier = keras.layers.Dense(
            self.num_labels, name="classifier", dtype=policy,
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=self.encoder.config.initializer_range))
        logits = self.classifier(self.head_dropout(encoder_outputs["sequence_output"]))
        return {"logits": ops.cast(logits, "float32")}

    def head_config(self):
        return {"num_labels": self.num_labels, "dropout": self.dropout_rate}
