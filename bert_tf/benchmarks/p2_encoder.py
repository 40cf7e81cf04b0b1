"""P2 fixed-shape encoder: BERT-base, seq 128, batch 1/8/32, sequences/s and model FLOP utilisation.

All TF implementations run under tf.function(jit_compile=True) (XLA) on the same random ids with a
full attention mask; HF runs eager PyTorch (sdpa) under inference_mode. The float32 matmul ceiling
is measured in the same run (`flops.matmul_ceiling`), MFU = seq/s × FLOPs/seq ÷ ceiling.
"""

from __future__ import annotations

import numpy as np

from bert_tf.benchmarks import flops, peers
from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.timing import alternate


def _ids(batch, seq, vocab):
    rng = np.random.default_rng(batch)
    ids = rng.integers(1000, vocab, size=(batch, seq), dtype=np.int32)
    return ids, np.zeros_like(ids), np.ones_like(ids)


def implementations(config, log):
    """name -> builder(batch, seq) -> zero-argument callable running one forward pass."""
    import keras
    import tensorflow as tf
    import torch

    from bert_tf.models import BertEncoder

    keras.utils.set_random_seed(0)
    ours = BertEncoder(config)
    ours_fn = tf.function(lambda f: ours(f, training=False)["sequence_output"], jit_compile=True)
    hub = peers.keras_hub_backbone(config)
    hub_fn = tf.function(lambda f: hub(f, training=False)["sequence_output"], jit_compile=True)
    garden = peers.model_garden_encoder(config)
    garden_fn = tf.function(lambda f: garden(f, training=False)["sequence_output"], jit_compile=True)
    hf = peers.hf_encoder(config)

    def ours_case(ids, types, mask):
        f = {"input_ids": tf.constant(ids), "token_type_ids": tf.constant(types),
             "attention_mask": tf.constant(mask)}
        return lambda: ours_fn(f).numpy()

    def hub_case(ids, types, mask):
        f = {"token_ids": tf.constant(ids), "segment_ids": tf.constant(types),
             "padding_mask": tf.constant(mask)}
        return lambda: hub_fn(f).numpy()

    def garden_case(ids, types, mask):
        f = {"input_word_ids": tf.constant(ids), "input_type_ids": tf.constant(types),
             "input_mask": tf.constant(mask)}
        return lambda: garden_fn(f).numpy()

    def hf_case(ids, types, mask):
        f = {"input_ids": torch.from_numpy(ids.astype(np.int64)),
             "token_type_ids": torch.from_numpy(types.astype(np.int64)),
             "attention_mask": torch.from_numpy(mask.astype(np.int64))}

        def call():
            with torch.inference_mode():
                return hf(**f).last_hidden_state.numpy()
        return call

    return {"bert_tf xla": ours_case, "keras_hub xla": hub_case, "model_garden xla": garden_case,
            "hf torch": hf_case}


def run(sizes, log) -> list:
    config = sizes.p2_config
    ceiling = flops.matmul_ceiling(sizes.matmul_size)
    log(f"P2 float32 matmul ceiling {sizes.matmul_size}³: {ceiling['gflops_median']:.1f} GFLOP/s "
        f"(median of {len(ceiling['values'])}, max {ceiling['gflops_max']:.1f})")
    per_sequence = flops.encoder_flops_per_sequence(config.hidden_size, config.num_hidden_layers,
                                                    config.intermediate_size, sizes.p2_seq)
    builders = implementations(config, log)
    rows = [Row("P2", "ceiling", f"tf matmul {sizes.matmul_size}^3", "info", "GFLOP/s",
                ceiling["values"])]
    for batch in sizes.p2_batches:
        inputs = _ids(batch, sizes.p2_seq, config.vocab_size)
        calls = sizes.p2_calls.get(batch, 1)
        cases = {}
        for name, build in builders.items():
            one = build(*inputs)
            cases[name] = ((lambda one=one: [one() for _ in range(calls)]), batch * calls)
        timings = alternate(cases, sizes.warmups, sizes.repeats)
        for name, timing in timings.items():
            throughput = timing.throughputs()
            median = float(np.median(throughput))
            mfu = median * per_sequence / (ceiling["gflops_median"] * 1e9)
            rows.append(Row("P2", f"batch {batch} seq {sizes.p2_seq}", name,
                            "ours" if name.startswith("bert_tf") else "peer", "seq/s", throughput,
                            extra={"mfu": mfu}))
    return rows
