"""P2 fixed-shape encoder: BERT-base, seq 128, batch 1/8/32, sequences/s and model FLOP utilisation.

All TF implementations run under tf.function(jit_compile=True) (XLA) on the same random ids with a
full attention mask; HF runs eager PyTorch (sdpa) under inference_mode; ONNX Runtime runs HF's
encoder exported by torch.onnx (dynamo, eager attention) with all graph optimizations. The float32
matmul ceiling (`flops.matmul_case`: XLA matmuls of a few shapes, BERT-base's projections among
them) is timed as
more cases in each batch size's alternating rounds, so a burst of load from elsewhere lands on it
and the encoders alike; MFU at a batch size = median seq/s × FLOPs/seq ÷ the best median matmul
GFLOP/s of the same rounds.
"""

from __future__ import annotations

import os

import numpy as np

from bert_tf.benchmarks import flops, peers
from bert_tf.benchmarks.results import Row
from bert_tf.benchmarks.timing import alternate


def _ids(batch, seq, vocab):
    rng = np.random.default_rng(batch)
    ids = rng.integers(1000, vocab, size=(batch, seq), dtype=np.int32)
    return ids, np.zeros_like(ids), np.ones_like(ids)


def implementations(config, log, work_dir: str, threads: int):
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
    onnx_path = peers.export_onnx(peers.eager_copy(hf), lambda out: out.last_hidden_state,
                                  os.path.join(work_dir, "encoder.onnx"),
                                  max_length=config.max_position_embeddings)
    session = peers.ort_session(onnx_path, threads)

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

    def ort_case(ids, types, mask):
        f = {"input_ids": ids.astype(np.int64), "token_type_ids": types.astype(np.int64),
             "attention_mask": mask.astype(np.int64)}
        return lambda: session.run(None, f)[0]

    return {"bert_tf xla": ours_case, "keras_hub xla": hub_case, "model_garden xla": garden_case,
            "hf torch": hf_case, "onnxruntime": ort_case}


CEILING = "xla matmul"


def run(sizes, work_dir, log, threads: int = 2) -> list:
    config = sizes.p2_config
    per_sequence = flops.encoder_flops_per_sequence(config.hidden_size, config.num_hidden_layers,
                                                    config.intermediate_size, sizes.p2_seq)
    builders = implementations(config, log, work_dir, threads)
    matmuls = {f"{CEILING} {m}x{k}x{n}": flops.matmul_case(m, k, n)
               for m, k, n in sizes.matmul_shapes}
    rows = []
    for batch in sizes.p2_batches:
        inputs = _ids(batch, sizes.p2_seq, config.vocab_size)
        calls = sizes.p2_calls.get(batch, 1)
        cases = {}
        for name, build in builders.items():
            one = build(*inputs)
            cases[name] = ((lambda one=one: [one() for _ in range(calls)]), batch * calls)
        # "items" of a matmul case = GFLOPs per call, so its throughputs are GFLOP/s.
        for name, (matmul, matmul_flops) in matmuls.items():
            cases[name] = (matmul, matmul_flops / 1e9)
        timings = alternate(cases, sizes.warmups, sizes.repeats)
        rates = {name: timings.pop(name).throughputs() for name in matmuls}
        case = f"batch {batch} seq {sizes.p2_seq}"
        log(f"P2 {case}: float32 matmul GFLOP/s in the same rounds (medians): " + ", ".join(
            f"{name.split()[-1]} {float(np.median(r)):.1f}" for name, r in rates.items()))
        best = max(rates, key=lambda name: float(np.median(rates[name])))
        gflops = rates[best]
        ceiling = float(np.median(gflops))
        rows.append(Row("P2", f"{case} ceiling", best, "info", "GFLOP/s", gflops))
        for name, timing in timings.items():
            throughput = timing.throughputs()
            mfu = float(np.median(throughput)) * per_sequence / (ceiling * 1e9)
            rows.append(Row("P2", case, name, "ours" if name.startswith("bert_tf") else "peer",
                            "seq/s", throughput, extra={"mfu": mfu}))
    return rows
