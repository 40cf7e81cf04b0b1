"""The generic trainer on tf.distribute: replicas, gradient accumulation, mixed precision,
checkpoints (SIGTERM, resume, seed checks) and the pre-training glue's HF export."""

import json
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig
from bert_tf.models import BertClassifier, BertEncoder, BertPretrainer, pretraining_losses
from bert_tf.training import (Callback, Trainer, TrainingError, TrainingOptions, create_optimizer)
from bert_tf.training.pretraining import PretrainingConfig, run_pretraining, setup_pretraining

VOCAB = 100
SEQ, PREDICTIONS = 16, 4


def tiny_config(dropout=0.0):
    return BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout)


def synthetic_examples(n=64, seed=0):
    """Pre-training batches' structure; every example has PREDICTIONS real predictions, so each
    micro-batch/replica loss has the same denominator and splitting a batch is exact."""
    rng = np.random.RandomState(seed)
    return dict(
        input_ids=rng.randint(5, VOCAB, (n, SEQ)).astype("int32"),
        token_type_ids=(np.arange(SEQ)[None, :] >= SEQ // 2).repeat(n, 0).astype("int32"),
        attention_mask=np.ones((n, SEQ), "int32"),
        masked_lm_positions=np.sort(rng.choice(np.arange(1, SEQ), (n, PREDICTIONS)), 1).astype("int32"),
        masked_lm_ids=rng.randint(5, VOCAB, (n, PREDICTIONS)).astype("int32"),
        masked_lm_weights=np.ones((n, PREDICTIONS), "float32"),
        next_sentence_labels=rng.randint(0, 2, (n,)).astype("int32"))


def synthetic_dataset(batch_size):
    return tf.data.Dataset.from_tensor_slices(synthetic_examples()).repeat().batch(
        batch_size, drop_remainder=True)


def write_synthetic_records(directory, n=96, seed=0):
    """A TFRecord directory as create-pretraining-data writes it (google's feature names +
    metadata.json), from random 'sentences' over a VOCAB-word vocabulary."""
    from bert_tf.data.pretraining import TrainingInstance
    from bert_tf.data.tfrecords import write_instances
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]
    vocab = {w: i for i, w in enumerate(words)}
    rng = np.random.RandomState(seed)
    instances = []
    for _ in range(n):
        length_a, length_b = rng.randint(3, 7), rng.randint(3, 7)
        tokens = (["[CLS]"] + [words[i] for i in rng.randint(5, VOCAB, length_a)] + ["[SEP]"]
                  + [words[i] for i in rng.randint(5, VOCAB, length_b)] + ["[SEP]"])
        positions = sorted(rng.choice(np.arange(1, length_a + 1), 2, replace=False).tolist())
        labels = [tokens[p] for p in positions]
        for p in positions:
            tokens[p] = "[MASK]"
        instances.append(TrainingInstance(tokens, [0] * (length_a + 2) + [1] * (length_b + 1),
                                          bool(rng.randint(2)), positions, labels))
    write_instances(instances, vocab, directory, max_seq_length=SEQ,
                    max_predictions_per_seq=PREDICTIONS, num_shards=2)
    return os.path.join(directory, "*.tfrecord")


def train(strategy, model_dir, batch_size=8, steps=4, grad_accum_steps=1, policy=None, **options):
    keras.utils.set_random_seed(7)
    previous = keras.mixed_precision.global_policy()
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    with strategy.scope():
        model = BertPretrainer(BertEncoder(tiny_config()))
        optimizer = create_optimizer("adamw", 1e-3, total_steps=10, warmup_steps=2)
    keras.mixed_precision.set_global_policy(previous)
    trainer = Trainer(model, pretraining_losses, optimizer, strategy, str(model_dir),
                      TrainingOptions(total_steps=steps, grad_accum_steps=grad_accum_steps,
                                      log_every=1, progress=False, **options))
    result = trainer.fit(synthetic_dataset(batch_size), global_batch_size=batch_size)
    return trainer, result, [v.numpy() for v in model.trainable_variables]


def max_difference(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def one_replica_run(tmp_path_factory):
    """4 steps of global batch 8 on one device: the reference for the equality tests."""
    return train(tf.distribute.OneDeviceStrategy("/cpu:0"), tmp_path_factory.mktemp("one"))


def test_training_moves_weights_and_logs(one_replica_run):
    trainer, result, weights = one_replica_run
    assert result.step == 4 and not result.interrupted
    assert {"loss", "mlm_accuracy", "nsp_accuracy", "learning_rate", "examples_per_second",
            "grad_norm"} <= set(result.logs)
    # lr at the last step's log: schedule after 4 updates (warmup 2, decay to 0 at 10).
    assert result.logs["learning_rate"] == pytest.approx(1e-3 * (1 - 4 / 10), rel=1e-5)
    assert int(trainer.optimizer.iterations.numpy()) == 4
    events = tf.io.gfile.glob(os.path.join(trainer.model_dir, "tensorboard", "events.*"))
    assert events, "no TensorBoard event file"
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(events[0]) for v in e.summary.value}
    assert {"train/loss", "train/mlm_accuracy", "train/learning_rate",
            "train/examples_per_second"} <= tags
    assert tf.train.latest_checkpoint(os.path.join(trainer.model_dir, "checkpoints")).endswith("ckpt-4")


@pytest.mark.slow
def test_two_replicas_equal_one_replica(one_replica_run, tmp_path):
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the 2 logical CPUs configured by conftest before TF starts")
    _, _, reference = one_replica_run
    trainer, result, weights = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), tmp_path)
    assert trainer.strategy.num_replicas_in_sync == 2
    assert max_difference(weights, reference) <= 1e-5
    assert max_difference(weights, train.__defaults__ and reference) <= 1e-5
    assert result.logs["loss"] == pytest.approx(one_replica_run[1].logs["loss"], rel=1e-5)


def test_gradient_accumulation_equals_full_batch(one_replica_run, tmp_path):
    _, _, reference = one_replica_run
    _, result, weights = train(tf.distribute.OneDeviceStrategy("/cpu:0"), tmp_path,
                               grad_accum_steps=4)   # 4 micro-batches of 2 = batch 8
    assert max_difference(weights, reference) <= 1e-5
    assert result.logs["loss"] == pytest.approx(one_replica_run[1].logs["loss"], rel=1e-5)


@pytest.mark.parametrize("policy,loss_scaling", [("mixed_bfloat16", False), ("mixed_float16", True)])
def test_mixed_precision_stays_finite(policy, loss_scaling, tmp_path):
    trainer, result, weights = train(tf.distribute.OneDeviceStrategy("/cpu:0"), tmp_path, steps=3,
                                     policy=policy, loss_scaling=loss_scaling)
    assert trainer.model.encoder.dtype_policy.name == policy
    assert all(np.isfinite(w).all() for w in weights)
    assert np.isfinite(result.logs["loss"])
    if loss_scaling:
        assert result.logs["loss_scale"] == 2.0 ** 15
        # all three steps had finite gradients, so all were applied
        assert int(trainer.optimizer.iterations.numpy()) == 3


def test_generic_task_and_fp16_skips_non_finite_steps(tmp_path):
    """Any model + loss function + (inputs, targets) dataset trains; with fp16 loss scaling a step
    whose gradients overflow is skipped (weights and optimizer untouched) and the scale halved."""
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
        optimizer = create_optimizer("adamw", 0.1, total_steps=40)
    features = np.random.RandomState(0).normal(size=(16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((features, features[:, :2] * 2.0)).repeat().batch(4)
    scale = tf.Variable(1.0)

    def regression_loss(outputs, targets):
        loss = tf.reduce_mean(tf.square(outputs - targets)) * scale
        return {"loss": loss, "mae": tf.reduce_mean(tf.abs(outputs - targets))}

    trainer = Trainer(model, regression_loss, optimizer, strategy, str(tmp_path),
                      TrainingOptions(total_steps=2, log_every=1, progress=False, loss_scaling=True))
    initial_loss = trainer.evaluate(dataset.take(4))["loss"]
    scale.assign(1e38)  # x 2**15 overflows float32 gradients
    before = [v.numpy() for v in model.trainable_variables]
    result = trainer.fit(dataset)
    assert int(optimizer.iterations.numpy()) == 0          # both steps skipped
    assert result.logs["loss_scale"] == 2.0 ** 13          # halved twice
    assert max_difference([v.numpy() for v in model.trainable_variables], before) == 0

    scale.assign(1.0)
    trainer.options.total_steps = 40
    result = trainer.fit(dataset)                           # resumes at step 2, now finite
    assert int(optimizer.iterations.numpy()) == 38
    final = trainer.evaluate(dataset.take(4))
    assert set(final) == {"loss", "mae"}
    assert final["loss"] < 0.5 * initial_loss, (initial_loss, final)


def test_bad_settings_fail_clearly(tmp_path):
    with pytest.raises(TrainingError, match="grad-accum-steps must be at least 1"):
        TrainingOptions(total_steps=3, grad_accum_steps=0).validate()
    if len(tf.config.list_logical_devices("CPU")) >= 2:
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = BertPretrainer(BertEncoder(tiny_config()))
            optimizer = create_optimizer("adamw", 1e-3, total_steps=3)
        with pytest.raises(TrainingError, match="--xla is not supported with 2 replicas"):
            Trainer(model, pretraining_losses, optimizer, strategy, str(tmp_path),
                    TrainingOptions(total_steps=3, xla=True))
    records = write_synthetic_records(str(tmp_path / "data"))
    config_path = str(tmp_path / "config.json")
    tiny_config().to_json_file(config_path)
    with pytest.raises(TrainingError, match="batch size 7 must divide evenly into 1 replica"):
        setup_pretraining(PretrainingConfig(config_path, records, str(tmp_path / "out"), 3,
                                            batch_size=7, grad_accum_steps=2, strategy="one_device"))
    with pytest.raises(TrainingError, match="no TFRecord files match|no training files match"):
        setup_pretraining(PretrainingConfig(config_path, str(tmp_path / "none*.tfrecord"),
                                            str(tmp_path / "out"), 3, strategy="one_device"))


class _SigtermAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step, logs):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_saves_then_resume_export_and_classifier(tmp_path):
    """SIGTERM mid-run saves a checkpoint and stops; the same run resumes from it, finishes, and
    exports OUT/pretrained/ that BertClassifier.from_pretrained loads (encoder carried)."""
    records = write_synthetic_records(str(tmp_path / "data"))
    config_path = str(tmp_path / "config.json")
    tiny_config(dropout=0.1).to_json_file(config_path)
    out = str(tmp_path / "out")
    config = PretrainingConfig(config_path, records, out, total_steps=6, batch_size=8,
                               warmup_steps=2, checkpoint_every=100, strategy="one_device",
                               log_every=2, progress=False, seed=3)
    trainer, dataset, _ = setup_pretraining(config)
    trainer.callbacks.append(_SigtermAt(3))
    result = trainer.fit(dataset, global_batch_size=8)
    assert result.interrupted and result.step == 3
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-3")
    assert signal.getsignal(signal.SIGTERM) is not trainer.request_stop  # handler given back

    with pytest.raises(ValueError, match="--seed: 3 → 4"):
        run_pretraining(PretrainingConfig(**{**config.__dict__, "seed": 4}))

    result = run_pretraining(config)
    assert result.step == 6 and not result.interrupted
    with open(os.path.join(out, "run.json")) as f:
        assert json.load(f)["total_steps"] == 6
    pretrained = os.path.join(out, "pretrained")
    assert sorted(os.listdir(pretrained)) == ["config.json", "model.safetensors"]

    trained = BertPretrainer.from_pretrained(pretrained)
    classifier = BertClassifier.from_pretrained(pretrained, num_classes=3)
    reference = {v.path: v.numpy() for v in trained.encoder.weights}
    carried = {v.path: v.numpy() for v in classifier.encoder.weights}
    assert reference.keys() == carried.keys()
    assert max(float(np.abs(reference[k] - carried[k]).max()) for k in reference) == 0
    fresh = BertEncoder(tiny_config())
    assert float(np.abs(fresh.token_embedding.numpy() - carried["embeddings/word_embeddings"]).max()) > 1e-3
    # The export holds the final (step 6) weights, heads included.
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(out, "checkpoints")))
    assert final.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 6


class _Recorder(Callback):
    """Each step's loss, and the weights at every 5th step (it sets every_steps: executions
    end there)."""
    every_steps = 5

    def __init__(self):
        self.losses, self.weights = [], {}

    def on_step_end(self, trainer, step, logs):
        self.losses.append((step, logs["loss"]))
        if step % self.every_steps == 0:
            self.weights[step] = [v.numpy() for v in trainer.model.trainable_variables]


@pytest.mark.slow
def test_steps_per_execution_gives_the_weights_of_one_step_per_call(tmp_path):
    """K=4 runs several steps per tf.function call, cut where a step's exact weights are needed
    (the callback's step 5, the checkpoint at 6, the logs at 4 and 8, the end at 10), and ends with
    K=1's weights (dropout on), per-step losses, checkpoints and logs; one trace serves every
    execution length."""
    def run(k):
        keras.utils.set_random_seed(7)
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        with strategy.scope():
            model = BertPretrainer(BertEncoder(tiny_config(dropout=0.1)))
            optimizer = create_optimizer("adamw", 1e-3, total_steps=10, warmup_steps=2)
        recorder = _Recorder()
        trainer = Trainer(model, pretraining_losses, optimizer, strategy, str(tmp_path / f"k{k}"),
                          TrainingOptions(total_steps=10, steps_per_execution=k, log_every=4,
                                          checkpoint_every=6, progress=False), [recorder])
        counts, steps = [], trainer.train_steps_function()
        if k > 1:   # the lengths of the executions fit asks for
            trainer._train_steps = lambda iterator, n: counts.append(int(n)) or steps(iterator, n)
        result = trainer.fit(synthetic_dataset(8), global_batch_size=8)
        checkpoints = sorted(os.listdir(trainer.checkpoint_dir))
        return result, recorder, [v.numpy() for v in model.trainable_variables], checkpoints, \
            counts, steps

    one, four = run(1), run(4)
    assert four[4] == [4, 1, 1, 2, 2]
    assert four[5].experimental_get_tracing_count() == 1
    assert four[0].step == 10 and max_difference(four[2], one[2]) <= 1e-6
    assert max_difference(four[1].weights[5], one[1].weights[5]) <= 1e-6
    assert [s for s, _ in four[1].losses] == list(range(1, 11))
    np.testing.assert_allclose([v for _, v in four[1].losses], [v for _, v in one[1].losses],
                               rtol=1e-6)
    assert four[3] == one[3] and "ckpt-6.index" in one[3]
    for name in ("loss", "mlm_accuracy", "grad_norm", "learning_rate"):
        assert four[0].logs[name] == pytest.approx(one[0].logs[name], rel=1e-6)


def test_steps_per_execution_settings(tmp_path):
    with pytest.raises(TrainingError, match="steps-per-execution must be at least 1, got 0"):
        TrainingOptions(total_steps=3, steps_per_execution=0).validate()
    records = write_synthetic_records(str(tmp_path / "data"))
    config_path = str(tmp_path / "config.json")
    tiny_config().to_json_file(config_path)
    config = PretrainingConfig(config_path, records, str(tmp_path / "out"), 3,
                               strategy="one_device", steps_per_execution=0)
    with pytest.raises(TrainingError, match="--steps-per-execution must be at least 1, got 0"):
        setup_pretraining(config)
    assert not os.path.exists(tmp_path / "out")
    trainer, _, _ = setup_pretraining(PretrainingConfig(**{**config.__dict__,
                                                          "steps_per_execution": 4}))
    assert trainer.options.steps_per_execution == 4


def test_strategy_tpu_without_a_tpu_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """No TPU_NAME and no TPU attached, or a grpc:// TPU worker that does not answer (connecting
    would wait for it forever): one DistributionError, exit 2 from the CLI, nothing written."""
    import socket

    import bert_tf.cli
    from bert_tf.training import DistributionError, create_strategy
    from tests.harness import write_tiny_classification, write_tiny_init

    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(DistributionError, match="strategy tpu: no TPU found .*TPU_NAME=local"):
        create_strategy("tpu")
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TPU_NAME", f"grpc://127.0.0.1:{port}")
    with pytest.raises(DistributionError, match=f"grpc://127.0.0.1:{port} does not answer"):
        create_strategy("tpu")

    monkeypatch.delenv("TPU_NAME")
    records = write_synthetic_records(str(tmp_path / "data"))
    config_path = str(tmp_path / "config.json")
    tiny_config().to_json_file(config_path)
    init = write_tiny_init(tmp_path / "init")
    train_file = write_tiny_classification(tmp_path / "train.csv")
    for argv in (["pretrain", "--config", config_path, "--data", records, "--steps", "2",
                  "--out", str(tmp_path / "pretrain-out"), "--strategy", "tpu"],
                 ["finetune", "classify", "--init", init, "--train", train_file,
                  "--out", str(tmp_path / "finetune-out"), "--strategy", "tpu"]):
        assert bert_tf.cli.main(argv) == 2
        error = capsys.readouterr().err
        assert f"bert-tf {argv[0]}: error: strategy tpu: no TPU found" in error, error
        assert len(error.strip().splitlines()) == 1, error
    assert not os.path.exists(tmp_path / "pretrain-out")
    assert not os.path.exists(tmp_path / "finetune-out")
