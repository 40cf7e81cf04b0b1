"""P4 training step: a 2-class sequence classifier, 4 layers hidden 256, seq 128, batch 16.

- bert_tf train_on_batch xla: `BertClassifier` compiled with AdamW, sparse cross-entropy on
  `logits`, `jit_compile=True`, `train_on_batch` (the plain-Keras way to train bert_tf models).
- bert_tf Trainer / Trainer xla: the same classifier in `bert_tf.training.Trainer`, the loop
  `bert-tf finetune` and `pretrain` run (google's AdamW, global-norm clipping, tf.distribute),
  without and with `--xla` (XLA on the forward and backward pass; the update runs outside it).
- keras_hub xla: `BertTextClassifier` (no preprocessor), the same optimizer/loss, `jit_compile=True`,
  `train_on_batch`.
- hf torch: `BertForSequenceClassification` (sdpa), `torch.optim.AdamW`, forward + backward + step.
bert_tf's classifier runs its last layer for the [CLS] rows only (the last block of its graph gets
`query_positions` [CLS]: keys and values for every position, queries and the feed-forward for
[CLS]), since the loss sees nothing else; its loss and gradients are the full model's
(tests/test_encoder.py checks them against HF).
The peers compute that layer at every position. The `gflops` column is throughput × the full
model's FLOPs per sequence for every row, so it reads as "effective" GFLOP/s for bert_tf.
Dropout is on (training), as in real fine-tuning: bert_tf's hashed keep masks
(`bert_tf.layers.HashDropout`), Keras' Philox ones in KerasHub, torch's in HF. All get the same
random ids and labels.
"""

from __future__ import annotations

import numpy as np

from bert_tf.benchmarks import flops, peers
from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.timing import alternate


def _optimizer():
    import keras
    return keras.optimizers.AdamW(learning_rate=1e-5, weight_decay=0.01)


def _loss():
    import keras
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _trainer_step(config, x, labels, xla: bool, model_dir: str, learning_rate: float = 1e-5):
    """One step of `bert_tf.training.Trainer` on a fixed batch, as a zero-argument callable."""
    import keras
    import tensorflow as tf

    from bert_tf.models import BertClassifier, BertEncoder
    from bert_tf.tasks.classification import ClassificationTask
    from bert_tf.training import Trainer, TrainingOptions, create_optimizer

    keras.utils.set_random_seed(0)
    model = BertClassifier(BertEncoder(config), num_classes=2)
    optimizer = create_optimizer("adamw", learning_rate, total_steps=10 ** 6, weight_decay_rate=0.01)
    # The loss `bert-tf finetune classify` trains with (cross-entropy, plus the batch accuracy).
    trainer = Trainer(model, ClassificationTask.loss, optimizer, tf.distribute.get_strategy(),
                      model_dir, TrainingOptions(total_steps=10 ** 6, xla=xla, progress=False))
    dataset = tf.data.Dataset.from_tensors((x, {"labels": labels})).repeat()
    iterator = iter(trainer.distribute(dataset))
    step = trainer.train_step_function()
    return lambda: float(step(iterator)["loss"])   # float(): wait for the step, as fit does


def run(sizes, log) -> list:
    import shutil
    import tempfile

    import keras
    import keras_hub
    import torch

    from bert_tf.models import BertClassifier, BertEncoder

    config = sizes.p4_config
    batch, seq, steps = sizes.p4_batch, sizes.p4_seq, sizes.p4_steps
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, config.vocab_size, size=(batch, seq), dtype=np.int32)
    types = np.zeros_like(ids)
    mask = np.ones_like(ids)
    labels = rng.integers(0, 2, size=(batch,), dtype=np.int32)

    keras.utils.set_random_seed(0)
    ours = BertClassifier(BertEncoder(config), num_classes=2)
    ours.compile(optimizer=_optimizer(), loss={"logits": _loss()}, jit_compile=True)
    our_x = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}

    hub = keras_hub.models.BertTextClassifier(peers.keras_hub_backbone(config), num_classes=2,
                                              preprocessor=None)
    hub.compile(optimizer=_optimizer(), loss=_loss(), jit_compile=True)
    hub_x = {"token_ids": ids, "segment_ids": types, "padding_mask": mask}

    hf = peers.hf_classifier(config).train()
    hf_optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-5, weight_decay=0.01)
    hf_x = {"input_ids": torch.from_numpy(ids.astype(np.int64)),
            "token_type_ids": torch.from_numpy(types.astype(np.int64)),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)),
            "labels": torch.from_numpy(labels.astype(np.int64))}

    def hf_step():
        loss = hf(**hf_x).loss
        loss.backward()
        hf_optimizer.step()
        hf_optimizer.zero_grad(set_to_none=True)
        return float(loss)

    model_dir = tempfile.mkdtemp(prefix="bert_tf-p4-")   # the Trainer's; nothing is saved there
    trainer_steps = {xla: _trainer_step(config, our_x, labels, xla, model_dir) for xla in (False, True)}

    cases = {
        "bert_tf train_on_batch xla": (lambda: [ours.train_on_batch(our_x, {"logits": labels})
                                                for _ in range(steps)], batch * steps),
        "bert_tf Trainer": (lambda: [trainer_steps[False]() for _ in range(steps)], batch * steps),
        "bert_tf Trainer xla": (lambda: [trainer_steps[True]() for _ in range(steps)],
                                batch * steps),
        "keras_hub train_on_batch xla": (lambda: [hub.train_on_batch(hub_x, labels)
                                                  for _ in range(steps)], batch * steps),
        "hf torch adamw": (lambda: [hf_step() for _ in range(steps)], batch * steps),
    }
    timings = alternate(cases, max(sizes.warmups, 1), sizes.repeats)
    shutil.rmtree(model_dir, ignore_errors=True)
    per_sequence = flops.training_flops_per_sequence(config.hidden_size, config.num_hidden_layers,
                                                     config.intermediate_size, seq)
    rows = []
    for name, timing in timings.items():
        throughput = timing.throughputs()
        rows.append(Row("P4", f"train b{batch} s{seq} L{config.num_hidden_layers} "
                              f"H{config.hidden_size}", name,
                        "ours" if name.startswith("bert_tf") else "peer", "seq/s", throughput,
                        extra={"gflops": float(np.median(throughput)) * per_sequence / 1e9}))
    return rows
