"""BertPretrainer: the encoder plus BERT's masked-LM (tied) and next-sentence heads, and their losses."""

from __future__ import annotations

import keras
from keras import ops

from bert_tf.layers import BertMaskedLMHead, BertNSPHead
from bert_tf.models.task import BertTaskModel, cls_positions


@keras.saving.register_keras_serializable(package="bert_tf")
class BertPretrainer(BertTaskModel):
    """Extra input `masked_lm_positions` [b, p] int32. Outputs `mlm_logits` [b, p, vocab] and
    `nsp_logits` [b, 2] (float32; NSP label 1 = the second segment is a random one)."""

    extra_inputs = {"masked_lm_positions": ((None,), "int32")}

    def create_heads(self):
        config = self.encoder.config
        policy = self.encoder.dtype_policy
        self.masked_lm = BertMaskedLMHead(
            self.encoder.embeddings, hidden_act=config.hidden_act,
            layer_norm_eps=config.layer_norm_eps, initializer_range=config.initializer_range,
            name="masked_lm", dtype=policy)
        self.next_sentence = BertNSPHead(initializer_range=config.initializer_range,
                                         name="next_sentence", dtype=policy)

    def last_layer_positions(self, inputs):
        # The heads read [CLS] (NSP) and the masked positions (MLM): the last layer computes
        # those 1 + p rows only, not all s.
        masked = ops.cast(inputs["masked_lm_positions"], "int32")                   # [b, p]
        return ops.concatenate([cls_positions(masked), masked], axis=1)             # [b, 1 + p]

    def heads(self, inputs, rows, training=None):
        # rows: [b, 1 + p, h], [CLS] first
        return {"mlm_logits": self.masked_lm(rows[:, 1:]),                          # [b, p, V]
                "nsp_logits": self.next_sentence(self.encoder.pooler(rows))}        # [b, 2]

    def save_pretrained(self, directory) -> str:
        """HF `BertForPreTraining` layout (`bert.`-prefixed encoder + `cls.` heads)."""
        from bert_tf.weights.canonical import pretraining_head_slots
        from bert_tf.weights.huggingface import save_pretrained
        return save_pretrained(self.encoder, directory, prefix="bert.",
                               extra_slots=pretraining_head_slots(self.masked_lm, self.next_sentence))

    def load_pretrained_heads(self, tensors: dict, source: str) -> None:
        """Strictly assigns canonical `cls/...` tensors to the heads."""
        from bert_tf.weights.canonical import assign, pretraining_head_slots
        assign(pretraining_head_slots(self.masked_lm, self.next_sentence), tensors, source)

    @classmethod
    def from_pretrained(cls, path, config=None, **kwargs):
        """Encoder and, when the checkpoint has them (google `cls/...`, HF BertForPreTraining), the
        pre-training heads too — strictly. A checkpoint without heads gets fresh heads."""
        import os

        from bert_tf.models.pretrained import read_pretrained
        encoder, head_tensors = read_pretrained(path, config=config)
        model = cls(encoder, **kwargs)
        if head_tensors:
            model.load_pretrained_heads(head_tensors, os.fspath(path))
        return model


def pretraining_losses(outputs: dict, targets: dict) -> dict:
    """BERT's pre-training objective, as google-research/bert's `get_masked_lm_output`/`get_next_sentence_output`.

    outputs: `mlm_logits` [b, p, V], `nsp_logits` [b, 2].
    targets: `masked_lm_ids` [b, p], `masked_lm_weights` [b, p] (0 for padding predictions),
             `next_sentence_labels` [b] or [b, 1].
    Returns per-batch scalars: `mlm_loss` (weighted mean over real predictions), `nsp_loss`, `loss`
    (their sum), and the accuracies `mlm_accuracy`, `nsp_accuracy`.
    """
    mlm_logits = ops.cast(outputs["mlm_logits"], "float32")
    weights = ops.cast(targets["masked_lm_weights"], "float32")                  # [b, p]
    ids = ops.cast(targets["masked_lm_ids"], "int32")                            # [b, p]
    per_prediction = keras.losses.sparse_categorical_crossentropy(ids, mlm_logits, from_logits=True)
    denominator = ops.sum(weights) + 1e-5  # google's 1e-5 keeps an all-padding batch finite
    mlm_loss = ops.sum(per_prediction * weights) / denominator
    mlm_correct = ops.cast(ops.equal(ops.argmax(mlm_logits, axis=-1), ids), "float32")
    mlm_accuracy = ops.sum(mlm_correct * weights) / denominator

    nsp_logits = ops.cast(outputs["nsp_logits"], "float32")
    labels = ops.reshape(ops.cast(targets["next_sentence_labels"], "int32"), (-1,))  # [b]
    nsp_loss = ops.mean(keras.losses.sparse_categorical_crossentropy(labels, nsp_logits, from_logits=True))
    nsp_accuracy = ops.mean(ops.cast(ops.equal(ops.argmax(nsp_logits, axis=-1), labels), "float32"))
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": mlm_accuracy, "nsp_accuracy": nsp_accuracy}
