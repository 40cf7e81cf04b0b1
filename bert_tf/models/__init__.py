"""BERT models: the encoder and the task models that wrap it."""

from bert_tf.models.classifier import BertClassifier
from bert_tf.models.encoder import BertEncoder
from bert_tf.models.pretrained import convert_checkpoint, load_encoder
from bert_tf.models.pretrainer import BertPretrainer, pretraining_losses
from bert_tf.models.sentence_encoder import BertSentenceEncoder
from bert_tf.models.span_labeler import BertSpanLabeler
from bert_tf.models.task import BertTaskModel
from bert_tf.models.token_classifier import BertTokenClassifier

__all__ = ["BertEncoder", "BertTaskModel", "BertPretrainer", "BertClassifier", "BertTokenClassifier",
           "BertSpanLabeler", "BertSentenceEncoder", "pretraining_losses", "load_encoder", "convert_checkpoint"]
