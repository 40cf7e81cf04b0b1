"""BertClassifier: dropout + dense on the pooled [CLS] output (sentiment, NLI, regression)."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.models.task import BertTaskModel, check_positive_int, dropout_dense_head


@keras.saving.register_keras_serializable(package="bert_tf")
class BertClassifier(BertTaskModel):
    """Output `logits` [b, num_classes] float32; `num_classes=1` is regression (a single score)."""

    def __init__(self, encoder, num_classes: int, dropout: float | None = None, **kwargs):
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.dropout_rate = encoder.config.hidden_dropout_prob if dropout is None else dropout
        super().__init__(encoder, **kwargs)

    def build_heads(self, inputs, encoder_outputs):
        self.head_dropout, self.classifier = dropout_dense_head(
            self.encoder, self.num_classes, self.dropout_rate, name="classifier")
        logits = self.classifier(self.head_dropout(encoder_outputs["pooled_output"]))
        return {"logits": ops.cast(logits, "float32")}

    def call(self, inputs, training=None, mask=None):
        # The functional graph (built above) defines the model: its layers, weights, summary and
        # serialization. Running it would compute the last layer's output at every position and
        # keep only [CLS]; this runs the same layers on position 0 alone (the encoder's
        # `pooled_output`), with the same result.
        pooled = self.encoder.pooled_output(inputs, training=training)          # [b, h]
        logits = self.classifier(self.head_dropout(pooled, training=training))  # [b, classes]
        return {"logits": ops.cast(logits, "float32")}

    def head_config(self):
        return {"num_classes": self.num_classes, "dropout": self.dropout_rate}
