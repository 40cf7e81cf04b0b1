#!/usr/bin/env python
"""P6: BERT-large pre-training step (MLM + NSP) with bert_tf's Keras layers on the JAX backend.

Made for a GPU machine with JAX (and PyTorch) but no TensorFlow: bert_tf's layers and models use
`keras.ops` only and `import bert_tf.models` does not import TensorFlow. It prints sequences/s and
model FLOP utilisation (MFU) against a bf16 dense ceiling (default 790 TFLOP/s, an H200's measured
bf16 matmul rate), and writes the numbers as JSON.

On the GPU machine (no network needed there):
    # 1. On a machine with registry access, download Keras and its small dependencies as wheels
    #    (JAX, numpy and ml-dtypes are already on the GPU machine):
    #      pip download --no-deps -d keras_wheels keras==3.15.1 namex==0.1.0 optree==0.20.0 \
    #          rich==15.0.0 markdown-it-py mdurl pygments h5py==3.16.0 absl-py packaging \
    #          --python-version 3.11 --platform manylinux2014_x86_64 --only-binary=:all:
    #    and copy keras_wheels/ plus this repository (bert_tf/ and tools/) to the GPU machine.
    # 2. There:
    #      pip install --no-index --find-links keras_wheels keras
    #      KERAS_BACKEND=jax PYTHONPATH=/path/to/repo python tools/bench_gpu_jax.py
    #    It tries batch sizes from --batches (largest first) and keeps the largest that compiles
    #    and runs without running out of memory, then times --steps steps. ~3-5 minutes.
    # CPU check (what the repository's tests do not need a GPU for):
    #      KERAS_BACKEND=jax PYTHONPATH=. python tools/bench_gpu_jax.py --tiny

Model: BERT-large (24 layers, hidden 1024, 16 heads, intermediate 4096, vocab 30522), seq 128,
20 masked positions per sequence (google-research/bert's max_predictions_per_seq for 128),
dropout 0.1 as in pre-training, Keras `mixed_bfloat16` (bf16 matmuls, float32 variables, softmax
and LayerNorm statistics), AdamW with global-norm clipping 1.0. The step is one `jax.jit` of
forward + backward + optimizer update (Keras' stateless API), buffers donated.

FLOPs per sequence (forward; training = 3x): per layer 8·s·h² (Q, K, V, output) + 4·s·h·i (FFN)
+ 4·s²·h (scores, context); MLM head on p positions: 2·p·h² (transform) + 2·p·h·V (tied decoder);
pooler + NSP 2·h² + 4·h. Embedding lookups are not counted. These are the full model's FLOPs:
bert_tf's pre-trainer runs its last layer's queries and feed-forward for [CLS] and the masked
positions only (the heads read nothing else), about 3% less work at 24 layers, so MFU here is
the standard model-FLOPs figure, not a count of what was executed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LARGE = dict(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
             intermediate_size=4096)
TINY = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128)


def flops_per_sequence(config, seq: int, predictions: int) -> float:
    """Training FLOPs of one sequence (3 x forward); see the module docstring."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    layer = 8 * seq * h * h + 4 * seq * h * i + 4 * seq * seq * h
    heads = 2 * predictions * h * h + 2 * predictions * h * v + 2 * h * h + 4 * h
    return 3.0 * (config.num_hidden_layers * layer + heads)


def make_batch(config, batch: int, seq: int, predictions: int, seed: int = 0) -> tuple:
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000 % config.vocab_size, config.vocab_size, size=(batch, seq), dtype=np.int32)
    types = np.zeros_like(ids)
    types[:, seq // 2:] = 1
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), predictions, replace=False)
                                  for _ in range(batch)]), axis=1).astype(np.int32)
    x = {"input_ids": ids, "token_type_ids": types, "attention_mask": np.ones_like(ids),
         "masked_lm_positions": positions}
    y = {"masked_lm_ids": np.take_along_axis(ids, positions, axis=1),
         "masked_lm_weights": np.ones((batch, predictions), np.float32),
         "next_sentence_labels": rng.integers(0, 2, size=(batch,), dtype=np.int32)}
    return x, y


def build_step(config, dtype: str):
    """(model, jitted step(state, x, y) -> (loss, state), initial state)."""
    import jax
    import keras

    from bert_tf.models import BertEncoder, BertPretrainer
    from bert_tf.models.pretrainer import pretraining_losses

    keras.utils.set_random_seed(0)
    model = BertPretrainer(BertEncoder(config, dtype=dtype))
    optimizer = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01, epsilon=1e-6,
                                       global_clipnorm=1.0)
    optimizer.build(model.trainable_variables)

    def loss_fn(trainable, non_trainable, x, y):
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return pretraining_losses(outputs, y)["loss"], non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state, x, y):
        trainable, non_trainable, optimizer_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_vars)

    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    return model, jax.jit(step, donate_argnums=(0,)), state


def is_out_of_memory(error: Exception) -> bool:
    text = f"{type(error).__name__}: {error}"
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def run(config_dict, seq, predictions, batches, steps, warmups, dtype, ceiling_tflops) -> dict:
    import jax
    import numpy as np

    from bert_tf.config import BertConfig

    config = BertConfig(**config_dict)
    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {device.platform}:{device.device_kind}; "
          f"dtype policy {dtype}", flush=True)
    for batch in sorted(batches, reverse=True):
        model, step, state = build_step(config, dtype)
        x, y = make_batch(config, batch, seq, predictions)
        try:
            started = time.perf_counter()
            loss, state = step(state, x, y)
            first_loss = float(loss)
            compile_s = time.perf_counter() - started
        except Exception as error:  # noqa: BLE001 - only running out of memory is expected here
            if not is_out_of_memory(error):
                raise
            print(f"batch {batch}: out of memory, trying a smaller one", flush=True)
            del model, step, state
            continue
        print(f"batch {batch}: fits; compile + first step {compile_s:.1f} s, loss {first_loss:.3f}",
              flush=True)
        for _ in range(warmups):
            loss, state = step(state, x, y)
        jax.block_until_ready(loss)
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            loss, state = step(state, x, y)
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - started)
        step_s = float(np.median(times))
        seq_per_s = batch / step_s
        flops = flops_per_sequence(config, seq, predictions)
        result = {
            "config": config_dict, "seq": seq, "masked_positions": predictions, "batch": batch,
            "dtype_policy": dtype, "device": f"{device.platform}:{device.device_kind}",
            "step_s_median": step_s, "step_s_min": min(times), "step_s_max": max(times),
            "sequences_per_s": seq_per_s, "tflops_per_s": seq_per_s * flops / 1e12,
            "ceiling_tflops": ceiling_tflops, "mfu": seq_per_s * flops / (ceiling_tflops * 1e12),
            "final_loss": float(loss), "parameters": int(model.count_params()),
        }
        return result
    raise SystemExit(f"no batch size in {sorted(batches)} fits in device memory")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="512,384,256,128",
                        help="comma-separated batch sizes to try, the largest that fits is timed")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20, help="masked positions per sequence")
    parser.add_argument("--dtype", default="mixed_bfloat16", help="Keras dtype policy")
    parser.add_argument("--ceiling-tflops", type=float, default=790.0,
                        help="dense bf16 ceiling of the device (H200: ~790 TFLOP/s)")
    parser.add_argument("--tiny", action="store_true",
                        help="a 2-layer hidden-64 model, seq 16, batch 2, 2 steps (CPU check)")
    parser.add_argument("--out", default="runs/bench/gpu_jax.json")
    args = parser.parse_args(argv)

    import keras
    if keras.backend.backend() != "jax":
        parser.error(f"run with KERAS_BACKEND=jax (Keras is using {keras.backend.backend()!r})")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if not batches or min(batches) < 1:
        parser.error(f"--batches needs positive batch sizes, got {args.batches!r}")
    if args.tiny:
        result = run(TINY, 16, 3, [2], 2, 1, args.dtype, args.ceiling_tflops)
    else:
        result = run(LARGE, args.seq, args.predictions, batches, args.steps, args.warmups,
                     args.dtype, args.ceiling_tflops)
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result, indent=2), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.out)
    print(f"BERT-large pre-training: {result['sequences_per_s']:.1f} seq/s at batch "
          f"{result['batch']}, {result['tflops_per_s']:.1f} TFLOP/s, MFU {result['mfu']:.1%} of "
          f"{args.ceiling_tflops:.0f} TFLOP/s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
