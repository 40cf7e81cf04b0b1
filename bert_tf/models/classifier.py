"""BertClassifier: dropout + dense on the pooled [CLS] output (sentiment, NLI, regression)."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.models.task import BertTaskModel, check_positive_int, cls_positions, dropout_dense_head


@keras.saving.register_keras_serializable(package="bert_tf")
class BertClassifier(BertTaskModel):
    """Output `logits` [b, num_classes] float32; `num_classes=1` is regression (a single score)."""

    def __init__(self, encoder, num_classes: int, dropout: float | None = None, **kwargs):
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.dropout_rate = encoder.config.hidden_dropout_prob if dropout is None else dropout
        super().__init__(encoder, **kwargs)

    def create_heads(self):
        self.head_dropout, self.classifier = dropout_dense_head(
            self.encoder, self.num_classes, self.dropout_rate, name="classifier")

    def last_layer_positions(self, inputs):
        # The pooler reads [CLS] alone: the last layer computes that row only (keys and values
        # still come from every position), which is all the logits depend on.
        return cls_positions(inputs["input_ids"])                                   # [b, 1]

    def heads(self, inputs, rows, training=None):
        pooled = self.encoder.pooler(rows)                                          # [b, h]
        logits = self.classifier(self.head_dropout(pooled, training=training))      # [b, classes]
        return {"logits": ops.cast(logits, "float32")}

    def head_config(self):
        return {"num_classes": self.num_classes, "dropout": self.dropout_rate}
