"""BertTokenClassifier: per-token logits on the sequence output (NER, tagging)."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.models.task import BertTaskModel, check_positive_int, dropout_dense_head


@keras.saving.register_keras_serializable(package="bert_tf")
class BertTokenClassifier(BertTaskModel):
    """Output `logits` [b, s, num_labels] float32."""

    def __init__(self, encoder, num_labels: int, dropout: float | None = None, **kwargs):
        self.num_labels = check_positive_int(num_labels, "num_labels")
        self.dropout_rate = encoder.config.hidden_dropout_prob if dropout is None else dropout
        super().__init__(encoder, **kwargs)

    def create_heads(self):
        self.head_dropout, self.classifier = dropout_dense_head(
            self.encoder, self.num_labels, self.dropout_rate, name="classifier")

    def heads(self, inputs, rows, training=None):
        # rows: every position's, [b, s, h] (or packed [n, h])
        logits = self.classifier(self.head_dropout(rows, training=training))   # [..., labels]
        return {"logits": ops.cast(logits, "float32")}

    def head_config(self):
        return {"num_labels": self.num_labels, "dropout": self.dropout_rate}
