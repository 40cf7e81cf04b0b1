"""P4 training step: a 2-class sequence classifier, 4 layers hidden 256, seq 128, batch 16.

- bert_tf: `BertClassifier` compiled with AdamW, sparse cross-entropy on `logits`,
  `jit_compile=True`, `train_on_batch`.
- keras_hub xla: `BertTextClassifier` (no preprocessor), the same optimizer/loss, `jit_compile=True`,
  `train_on_batch`.
- hf torch: `BertForSequenceClassification` (sdpa), `torch.optim.AdamW`, forward + backward + step.
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


def run(sizes, log) -> list:
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

    cases = {
        "bert_tf train_on_batch xla": (lambda: [ours.train_on_batch(our_x, {"logits": labels})
                                                for _ in range(steps)], batch * steps),
        "keras_hub train_on_batch xla": (lambda: [hub.train_on_batch(hub_x, labels)
                                                  for _ in range(steps)], batch * steps),
        "hf torch adamw": (lambda: [hf_step() for _ in range(steps)], batch * steps),
    }
    timings = alternate(cases, max(sizes.warmups, 1), sizes.repeats)
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
