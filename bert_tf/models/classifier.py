"""BertClassifier: dropout + dense on the pooled [CLS] output (sentiment, NLI, regression)."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.models.task import BertTaskModel


@keras.saving.register_keras_serializable(package="bert_tf")
class BertClassifier(BertTaskModel):
    """Output `logits` [b, num_classes] float32; `num_classes=1` is regression (a single score)."""

    def __init__(self, encoder, num_classes: int, dropout: float | None = None, **kwargs):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.dropout_rate = encoder.config.hidden_dropout_prob if dropout is None else dropout
        super().__init__(encoder, **kwargs)

    def build_heads(self, inputs, encoder_outputs):
        policy = self.encoder.dtype_policy
        self.head_dropout = keras.layers.Dropout(self.dropout_rate, dtype=policy)
        self.classifier = keras.layers.Dense(
            self.num_classes, name="classifier", dtype=policy,
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=self.encoder.config.initializer_range))
        logits = self.classifier(self.head_dropout(encoder_outputs["pooled_output"]))
        return {"logits": ops.cast(logits, "float32")}

    def head_config(self):
        return {"num_classes": self.num_classes, "dropout": self.dropout_rate}
