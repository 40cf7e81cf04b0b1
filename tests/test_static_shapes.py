"""TPU-ready training: every training input path can yield elements whose shapes are all known
when the step is traced ([global_batch, seq], ...), and the pre-training and fine-tuning steps
build and run under XLA on a strategy that does not pad partial batches, the constraint TPUs
impose. Dynamic shapes are refused with one clear error before any step runs."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig
from bert_tf.data import masking
from bert_tf.data.classification import ClassificationData
from bert_tf.data.squad import SquadAnswer, SquadExample
from bert_tf.data.tfrecords import load_pretraining_dataset
from bert_tf.models import BertEncoder, BertPretrainer, pretraining_losses
from bert_tf.tasks import ClassificationTask, NerTask, SquadTask
from bert_tf.tasks.base import train_dataset
from bert_tf.tasks.ner import TaggedSentences
from bert_tf.tasks.squad import SquadRecords
from bert_tf.text import BertTokenizer
from bert_tf.training import Trainer, TrainingError, TrainingOptions, create_optimizer
from bert_tf.training.trainer import check_static_shapes
from tests.harness import TINY_WORDS
from tests.test_training import PREDICTIONS, SEQ, VOCAB, write_synthetic_records

BATCH = 4          # global batch: one replica here, so also the replica's batch
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, "##s", "##ly"]


def tpu_like_strategy():
    """One CPU replica with TPUStrategy's constraint: `get_next_as_optional` off, so a short
    batch is not padded up to the element spec (TPUs need the spec itself to be static)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    strategy.extended.experimental_enable_get_next_as_optional = False
    return strategy


def assert_static(spec, batch):
    for component in tf.nest.flatten(spec, expand_composites=True):
        assert isinstance(component, tf.TensorSpec), component
        assert component.shape.is_fully_defined() and component.shape[0] == batch, component


def build_and_run(build_model, loss, dataset, out, batch=BATCH, steps=2, **options):
    """Trains `steps` steps with XLA and static_shapes on; returns the shapes the loss saw."""
    assert_static(dataset.element_spec, batch)
    strategy = tpu_like_strategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model()
        optimizer = create_optimizer("adamw", 1e-3, total_steps=steps)
    seen = []

    def recording_loss(outputs, targets):
        # Runs while the XLA-compiled gradient function is traced: the shapes it is built for.
        seen.extend(t.shape for t in tf.nest.flatten((outputs, targets)))
        return loss(outputs, targets)

    trainer = Trainer(model, recording_loss, optimizer, strategy, str(out), TrainingOptions(
        total_steps=steps, xla=True, static_shapes=True, log_every=steps, checkpoint_every=steps,
        progress=False, **options))
    assert_static(trainer.distribute(dataset).element_spec, batch)
    result = trainer.fit(dataset, global_batch_size=batch)
    assert result.step == steps and math.isfinite(result.logs["loss"])
    assert seen and all(s.is_fully_defined() for s in seen), seen
    return seen


def tiny_config(vocab_size=len(TOKENS)):
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=SEQ)


def pretrainer(vocab_size=VOCAB):
    return BertPretrainer(BertEncoder(tiny_config(vocab_size)))


@pytest.mark.slow
def test_pretraining_records_step_is_static_under_xla(tmp_path):
    """Static masking from TFRecords, 2 steps per execution (the TPU host loop)."""
    records = write_synthetic_records(str(tmp_path / "data"))
    dataset = load_pretraining_dataset(records, BATCH, SEQ, PREDICTIONS, shuffle=True, seed=1)
    seen = build_and_run(pretrainer, pretraining_losses, dataset, tmp_path / "out",
                         steps_per_execution=2)
    assert [BATCH, PREDICTIONS, VOCAB] in [s.as_list() for s in seen]   # the MLM logits


def documents(seed=0):
    """Token-id documents over TOKENS, with "##" pieces so that whole words span pieces."""
    rng = np.random.RandomState(seed)
    first, last = 5, len(TOKENS) - 2
    return [[[int(i) if rng.rand() > 0.3 else TOKENS.index("##s")
              for i in rng.randint(first, last, rng.randint(3, 9))]
             for _ in range(6)] for _ in range(8)]


@pytest.mark.slow
def test_dynamic_masking_step_is_static_under_xla(tmp_path):
    """Raw text masked in the pipeline, by tokens or whole words: the same static batches (the
    whole-word stream trains; the step is the same for both)."""
    by_tokens, whole_words = (masking.dynamic_masking_dataset_from_documents(
        documents(), TOKENS, BATCH, SEQ, PREDICTIONS, whole_word_mask=whole_word_mask, seed=3,
        shuffle_buffer_size=64) for whole_word_mask in (False, True))
    assert_static(by_tokens.element_spec, BATCH)
    assert by_tokens.element_spec == whole_words.element_spec
    build_and_run(lambda: pretrainer(len(TOKENS)), pretraining_losses, whole_words, tmp_path)


def fine_tuning_case(name):
    """(task, labeled records) of a few sentences over TINY_WORDS."""
    tokenizer = BertTokenizer(TOKENS, sequence_length=SEQ)
    rng = np.random.RandomState(1)
    sentences = [list(rng.choice(TINY_WORDS, rng.randint(3, 8))) for _ in range(10)]
    if name == "classify":   # sentence pairs: [CLS] a [SEP] b [SEP]
        texts = [" ".join(s) for s in sentences]
        pairs = texts[::-1]
        labels = [i % 2 for i in range(len(texts))]
        records = ClassificationData(texts, pairs, labels, ("neg", "pos"), list(range(len(texts))))
        return ClassificationTask(tokenizer, ("neg", "pos")), records
    if name == "ner":
        tags = [["B-X" if w in ("movie", "plot") else "O" for w in s] for s in sentences]
        return NerTask(tokenizer, ("O", "B-X", "I-X")), TaggedSentences(list(zip(sentences, tags)))
    examples = []
    for i, s in enumerate(sentences):
        context = " ".join(s + sentences[(i + 1) % len(sentences)])
        examples.append(SquadExample(f"q{i}", "", f"was {s[1]} ?", context,
                                     (SquadAnswer(s[1], context.index(s[1])),)))
    return SquadTask(tokenizer, doc_stride=4, max_query_length=4), SquadRecords(examples, None)


@pytest.mark.parametrize("name", ["classify", "ner", "squad"])
def test_fine_tuning_step_is_static_under_xla(tmp_path, name):
    task, records = fine_tuning_case(name)
    features = task.encode(records, training=True)
    seen = build_and_run(lambda: task.build_model(BertEncoder(tiny_config())), task.loss,
                         train_dataset(features, BATCH, seed=0), tmp_path, grad_accum_steps=2)
    # Two micro-batches of BATCH / 2 rows, each shape static (the accumulation's reshape too).
    assert all(s[0] == BATCH // 2 for s in seen if s.rank), seen


def test_dynamic_shapes_are_refused_before_any_step(tmp_path):
    """Length buckets, a kept short last batch or ragged components: one TrainingError naming
    the component, raised by fit before it trains (TPUs would fail to compile, or recompile)."""
    buckets = masking.dynamic_masking_dataset_from_documents(
        documents(), TOKENS, BATCH, SEQ, PREDICTIONS, seed=3, bucket_boundaries=[8])
    with pytest.raises(TrainingError, match=r"\['input_ids'\]: \(4, None\)"):
        check_static_shapes(buckets)
    records = write_synthetic_records(str(tmp_path / "data"))
    remainder = load_pretraining_dataset(records, BATCH, SEQ, PREDICTIONS, repeat=False,
                                         drop_remainder=False)
    with pytest.raises(TrainingError, match=r"\['next_sentence_labels'\]: \(None,\)"):
        check_static_shapes(remainder)
    ragged = tf.data.Dataset.from_tensors(tf.ragged.constant([[1, 2], [3]])).repeat()
    with pytest.raises(TrainingError, match="element: RaggedTensorSpec"):
        check_static_shapes(ragged)

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = pretrainer()
        optimizer = create_optimizer("adamw", 1e-3, total_steps=2)
    trainer = Trainer(model, pretraining_losses, optimizer, strategy, str(tmp_path / "out"),
                      TrainingOptions(total_steps=2, static_shapes=True, progress=False))
    with pytest.raises(TrainingError, match="drop_remainder=True"):
        trainer.fit(remainder.repeat())
    assert int(trainer.step.numpy()) == 0
