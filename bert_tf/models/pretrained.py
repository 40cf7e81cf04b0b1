"""Pre-trained checkpoints into bert_tf models and back out.

Dependencies flow one way: `bert_tf.weights` reads a checkpoint into (BertConfig, canonical tensors)
and assigns or writes the weights of an encoder it is given, without ever importing this package.
Building the model happens here, in three steps: read (weights) → build `BertEncoder` → assign
(weights). The `from_pretrained` class methods of the models call these functions.
"""

from __future__ import annotations

import logging
import os

from bert_tf import fileio
from bert_tf import weights
from bert_tf.models.encoder import BertEncoder

logger = logging.getLogger(__name__)


def _encoder_from_keras_file(path) -> BertEncoder:
    """The `BertEncoder` of a bert_tf `.keras` file (a bare encoder or any task model)."""
    import keras

    model = keras.saving.load_model(path)
    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, BertEncoder):
        raise weights.WeightsError(f"{path} holds a {type(model).__name__}, not a bert_tf model")
    return encoder


def read_pretrained(path, config=None, **encoder_kwargs) -> tuple:
    """(BertEncoder with the checkpoint's encoder weights, the checkpoint's pre-training head
    tensors under `cls/`, empty when it has none) for any format `bert_tf.weights` reads, or a
    bert_tf `.keras` file (whose model keeps its own heads: the tensors returned are empty).

    `config` overrides the checkpoint's config (Model Garden checkpoints infer one from shapes);
    `encoder_kwargs` go to `BertEncoder` (e.g. `output_hidden_states`, `dtype`).
    """
    if weights.detect_format(path) == "keras":
        return _encoder_from_keras_file(path), weights.CanonicalTensors()
    checkpoint_config, tensors = weights.read_checkpoint(path, config=config)
    encoder = BertEncoder(config or checkpoint_config, **encoder_kwargs)
    encoder_tensors, head_tensors = weights.split_heads(tensors)
    weights.assign(weights.encoder_slots(encoder), encoder_tensors, source=os.fspath(path))
    return encoder, head_tensors


def load_encoder(path, config=None, **encoder_kwargs) -> BertEncoder:
    """A `BertEncoder` with the weights at `path` (format detected). Pre-training heads found in the
    checkpoint are dropped on purpose (logged), since an encoder has no place for them."""
    encoder, heads = read_pretrained(path, config=config, **encoder_kwargs)
    if heads:
        logger.info("%s: not loading %d head tensors into an encoder (%s)", path,
                    len(heads), ", ".join(sorted(heads)))
    return encoder


def convert_checkpoint(source, output_dir, output_format: str = "huggingface") -> str:
    """Loads the encoder at `source` (any readable format) and writes it in `output_format` (one of
    `bert_tf.weights.OUTPUT_FORMATS`); a `vocab.txt` beside the source travels along."""
    weights.check_output_format(output_format)  # before the (slow) load
    vocab = os.path.join(os.fspath(source), "vocab.txt")
    return weights.write_checkpoint(load_encoder(source), output_dir, output_format,
                                    vocab_file=vocab if fileio.isfile(vocab) else None)


POOLER = ("bert/pooler/dense/kernel", "bert/pooler/dense/bias")


def task_model_slots(model) -> dict:
    """Canonical name → Slot for every variable of a task model with a checkpoint-format head:
    the encoder's (`bert/...`) and its head's under google-research/bert's fine-tuning names
    (`output_weights`/`output_bias` for a classifier, regressor or token classifier,
    `cls/squad/...` for span QA)."""
    from bert_tf.models.classifier import BertClassifier
    from bert_tf.models.span_labeler import BertSpanLabeler
    from bert_tf.models.token_classifier import BertTokenClassifier
    from bert_tf.weights.canonical import CLASSIFIER_HEAD, SPAN_HEAD, dense_head_slots
    slots = weights.encoder_slots(model.encoder)
    if isinstance(model, (BertClassifier, BertTokenClassifier)):
        slots.update(dense_head_slots(model.classifier, CLASSIFIER_HEAD))
    elif isinstance(model, BertSpanLabeler):
        slots.update(dense_head_slots(model.span_dense, SPAN_HEAD))
    else:
        raise weights.WeightsError(f"a {type(model).__name__} has no task head that checkpoint "
                                   f"formats carry (classifier, token classifier, span QA)")
    return slots


def uses_pooler(model) -> bool:
    """Whether the model's outputs read the pooler: a classifier's do; a token classifier's and a
    span labeler's don't (transformers' BertForTokenClassification / BertForQuestionAnswering
    have no pooler weights)."""
    from bert_tf.models.classifier import BertClassifier
    return isinstance(model, BertClassifier)


__all__ = ["read_pretrained", "load_encoder", "convert_checkpoint", "task_model_slots",
           "uses_pooler", "POOLER"]
