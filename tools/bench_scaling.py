#!/usr/bin/env python
"""Multi-worker scaling of `bert-tf pretrain` on loopback: 1, 2 and 4 local worker processes with
the same global batch, each started with the TF_CONFIG `tools/cluster_config.py` generates.

    python tools/bench_scaling.py                          # workers 1,2,4; tiny model
    python tools/bench_scaling.py --workers 1,2 --steps 60 --global-batch 64

Data: `bert-tf create-pretraining-data --corpus wikipedia` (the Wikipedia articles of the pinned
gensim wheel, the corpus tests/test_pretrain_real.py trains on) with the pinned MiniLM vocabulary
(bert-base-uncased's), sequences of --seq-length, one TFRecord file per worker of the largest
configuration. Model: a fresh BERT of --hidden x --layers (head size 64, intermediate 4 x
hidden) built by `bert_tf.training.pretraining.setup_pretraining`, i.e. what `bert-tf pretrain
--strategy auto` runs: OneDeviceStrategy for 1 worker, MultiWorkerMirroredStrategy otherwise.

Each worker times, after --warmup full steps (tracing included there):

  compute     forward + backward on its share of the global batch (gradients made dense as the
              trainer makes them), no communication;
  + all-reduce the same followed by the all-reduce (mean) of every gradient across workers, as
              the trainer's step does it;
  step        the trainer's own step (`Trainer.train_step_function`): the above plus the
              metrics' all-reduce, global-norm clipping and the AdamW update.

Compute and compute + all-reduce calls alternate, so each compute call starts right after a
collective (the workers enter it together) and both see the same load. The all-reduce share is
(t[+ all-reduce] - t[compute]) / t[step]: both times are taken under the same contention, so
the difference is the collective's cost (transfer plus waiting for the slowest worker). A second
estimate compares with one worker: the 1-worker run also times its step at the per-worker batch
of each larger configuration (global / N rows), and "overhead vs 1 worker" is
1 - t1[step at global/N] / tN[step]: everything a worker of N pays beyond doing its share alone
(the all-reduce, and on a machine with fewer cores than workers also their contention for them).
examples/s = global batch / t[step] (the workers advance in lockstep); the speedup is against
the 1-worker row.

OneDeviceStrategy's all-reduce does nothing, so the 1-worker row's share is the timing noise.

Results go to stdout as a Markdown table, with the CPU count and the load average at the start:
on loopback all workers share this machine's cores and no byte crosses a network, so the
figures show the software's overheads, not a cluster's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, REPO)
sys.path.insert(0, TOOLS)

import cluster_config  # noqa: E402

RESULT_TAG = "BENCH_SCALING_RESULT "


# ------------------------------------------------------------------------------------ worker
def _dense_gradients(trainer, batch):
    """Forward + backward on one replica's batch; gradients dense and float32, as
    `Trainer._gradients` makes them (embedding lookups give IndexedSlices)."""
    import tensorflow as tf
    inputs, targets = trainer.split_batch(batch)
    variables = trainer.model.trainable_variables
    with tf.GradientTape() as tape:
        loss = trainer.loss_fn(trainer.model(inputs, training=True), targets)["loss"]
    grads = tape.gradient(loss, variables)
    return [tf.cast(tf.zeros_like(v) if g is None else tf.convert_to_tensor(g), tf.float32)
            for g, v in zip(grads, variables)]


def _phase_function(trainer, all_reduce: bool):
    import tensorflow as tf
    strategy = trainer.strategy

    def replica(batch):
        grads = _dense_gradients(trainer, batch)
        if all_reduce:
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN,
                                                                   grads)
        # The norm depends on every gradient, so none of the work can be pruned away.
        return tf.linalg.global_norm(grads)

    @tf.function(autograph=False)
    def phase(iterator):
        return strategy.experimental_local_results(strategy.run(replica, args=(next(iterator),)))[0]
    return phase


def _seconds_per_call(call, iterator, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        call(iterator)
    return (time.perf_counter() - start) / steps


def run_worker(spec: dict) -> dict:
    """One worker process: times compute / + all-reduce / step (see the module docstring)."""
    import tensorflow as tf

    from bert_tf.config import BertConfig
    from bert_tf.training.pretraining import PretrainingConfig, setup_pretraining

    bert_config = BertConfig(hidden_size=spec["hidden"], num_hidden_layers=spec["layers"],
                             num_attention_heads=max(1, spec["hidden"] // 64),
                             intermediate_size=4 * spec["hidden"],
                             max_position_embeddings=spec["seq_length"],
                             vocab_size=spec["vocab_size"])
    config = PretrainingConfig(bert_config, spec["data"], spec["out"], total_steps=10 ** 6,
                               batch_size=spec["global_batch"], strategy="auto", seed=1,
                               checkpoint_every=10 ** 6, log_every=10 ** 6, progress=False,
                               probe_batches=0)
    trainer, dataset, _ = setup_pretraining(config)
    step = trainer.train_step_function()
    compute, reduced = _phase_function(trainer, False), _phase_function(trainer, True)

    # Every call returns only after its work is done: the metrics are read back (float).
    def full(it):
        return float(step(it)["loss"])

    def plain(it):
        return float(compute(it))

    def with_all_reduce(it):
        return float(reduced(it))

    iterator = iter(trainer.distribute(dataset))
    for _ in range(spec["warmup"]):
        full(iterator)
    plain(iterator)             # traced here, outside the timing
    with_all_reduce(iterator)   # traced, and the workers leave it together
    # Alternated call by call: a change of load from outside hits both alike, and every compute
    # call starts right after a collective, with all workers together.
    times = {"compute": 0.0, "all_reduce": 0.0}
    for _ in range(spec["phase_steps"]):
        times["compute"] += _seconds_per_call(plain, iterator, 1) / spec["phase_steps"]
        times["all_reduce"] += _seconds_per_call(with_all_reduce, iterator, 1) / spec["phase_steps"]
    times["step"] = _seconds_per_call(full, iterator, spec["steps"])

    # One worker alone: its step at the per-worker batch of each larger configuration.
    alone = {}
    for rows in spec.get("alone_batches", []):
        sliced = dataset.map(lambda batch, rows=rows: {k: v[:rows] for k, v in batch.items()})
        it = iter(trainer.distribute(sliced))
        for _ in range(max(2, spec["warmup"] // 2)):
            full(it)
        alone[str(rows)] = _seconds_per_call(full, it, spec["steps"])
    variables = trainer.model.trainable_variables
    return {"times": times, "alone": alone, "replicas": trainer.strategy.num_replicas_in_sync,
            "strategy": type(trainer.strategy).__name__, "chief": trainer.is_chief,
            "parameters": int(sum(tf.size(v).numpy() for v in variables))}


# ------------------------------------------------------------------------------ orchestrator
def _free_ports(n: int) -> list:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(tf_config: dict | None = None) -> dict:
    """This environment for a child process, with `tf_config` as its only TF_CONFIG (none when
    None: a TF_CONFIG inherited from the shell must not make a child join another cluster)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_configuration(workers: int, spec: dict, timeout: float) -> list:
    """Starts `workers` local processes with generated TF_CONFIG; returns their results."""
    hosts = cluster_config.parse_hosts(",".join(f"127.0.0.1:{p}" for p in _free_ports(workers)))
    processes = []
    for tf_config in cluster_config.tf_configs(hosts):
        worker_spec = dict(spec, out=os.path.join(spec["out"], f"workers{workers}"))
        processes.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker-spec", json.dumps(worker_spec)],
            cwd=REPO, env=_env(tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True))
    deadline, outputs = time.time() + timeout, []
    try:
        for p in processes:
            outputs.append(p.communicate(timeout=max(1.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        raise SystemExit(f"bench_scaling: {workers} worker(s) did not finish in {timeout:.0f} s")
    finally:
        for p in processes:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    results = []
    for index, (p, (out, err)) in enumerate(zip(processes, outputs)):
        lines = [line for line in out.splitlines() if line.startswith(RESULT_TAG)]
        if p.returncode != 0 or not lines:
            raise SystemExit(f"bench_scaling: worker {index} of {workers} failed "
                             f"(exit {p.returncode}):\n{err[-3000:]}")
        results.append(json.loads(lines[-1][len(RESULT_TAG):]))
    return results


def _prepare_data(work: str, shards: int, seq_length: int) -> tuple:
    from bert_tf.data.fetch import minilm_dir
    vocab = os.path.join(minilm_dir(), "vocab.txt")
    data = os.path.join(work, "data")
    command = [sys.executable, "-m", "bert_tf.cli", "create-pretraining-data",
               "--corpus", "wikipedia", "--vocab", vocab, "--output", data,
               "--max-seq-length", str(seq_length), "--max-predictions-per-seq",
               str(max(1, round(seq_length * 0.15))), "--dupe-factor", "1",
               "--num-shards", str(shards), "--random-seed", "1", "--no-progress"]
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_scaling: create-pretraining-data failed:\n{done.stderr[-3000:]}")
    with open(vocab, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    return os.path.join(data, "*.tfrecord"), vocab_size


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def table(rows: dict, global_batch: int) -> str:
    """Markdown rows from {workers: [worker results]}."""
    one = rows.get(1)
    base = _mean(r["times"]["step"] for r in one) if one else None
    lines = ["| workers | per-worker batch | step ms | examples/s | speedup | compute ms | "
             "compute + all-reduce ms | all-reduce share | 1 worker alone at this batch, ms | "
             "overhead vs 1 worker |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for workers, results in sorted(rows.items()):
        t = {k: _mean(r["times"][k] for r in results) for k in ("compute", "all_reduce", "step")}
        per_worker = global_batch // workers
        share = max(0.0, t["all_reduce"] - t["compute"]) / t["step"]
        alone = one[0]["alone"].get(str(per_worker)) if one and workers > 1 else None
        lines.append(
            f"| {workers} | {per_worker} | {1000 * t['step']:.0f} | "
            f"{global_batch / t['step']:.1f} | "
            + (f"{base / t['step']:.2f}x" if base else "n/a")
            + f" | {1000 * t['compute']:.0f} | {1000 * t['all_reduce']:.0f} | {100 * share:.0f}% | "
            + (f"{1000 * alone:.0f} | {100 * (1 - alone / t['step']):.0f}% |" if alone
               else "- | - |"))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    p.add_argument("--global-batch", type=int, default=32)
    p.add_argument("--seq-length", type=int, default=128)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5, help="full steps before any timing")
    p.add_argument("--steps", type=int, default=30, help="timed trainer steps per worker")
    p.add_argument("--phase-steps", type=int, default=15,
                   help="timed compute and compute + all-reduce calls per worker")
    p.add_argument("--data", default=None,
                   help="TFRecord glob from create-pretraining-data (default: built from the "
                        "pinned Wikipedia corpus)")
    p.add_argument("--vocab-size", type=int, default=None, help="with --data: the model's vocab")
    p.add_argument("--timeout", type=float, default=600, help="seconds per configuration")
    p.add_argument("--work-dir", default=None, help="kept; default: a temporary directory")
    p.add_argument("--worker-spec", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker_spec:
        result = run_worker(json.loads(args.worker_spec))
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0

    try:
        counts = sorted({int(n) for n in args.workers.split(",")})
    except ValueError:
        p.error(f"--workers: {args.workers!r} is not a comma-separated list of integers")
    if counts[0] < 1:
        p.error("--workers: every count must be at least 1")
    for n in counts:
        if args.global_batch % n:
            p.error(f"--global-batch {args.global_batch} does not split over {n} workers")
    if args.data and not args.vocab_size:
        p.error("--data needs --vocab-size (the vocabulary the records were written with)")

    load = os.getloadavg()
    started = time.perf_counter()
    work = args.work_dir or tempfile.mkdtemp(prefix="bench_scaling-")
    try:
        if args.data:
            data, vocab_size = args.data, args.vocab_size
        else:
            data, vocab_size = _prepare_data(work, max(counts), args.seq_length)
        spec = dict(data=data, out=os.path.join(work, "runs"), vocab_size=vocab_size,
                    hidden=args.hidden, layers=args.layers, seq_length=args.seq_length,
                    global_batch=args.global_batch, warmup=args.warmup, steps=args.steps,
                    phase_steps=args.phase_steps)
        rows = {}
        for n in counts:
            alone = [args.global_batch // m for m in counts if m > 1] if n == 1 else []
            rows[n] = run_configuration(n, dict(spec, alone_batches=alone), args.timeout)
            chiefs = [r["chief"] for r in rows[n]]
            print(f"{n} worker(s): {rows[n][0]['strategy']}, {rows[n][0]['replicas']} "
                  f"replica(s), chief flags {chiefs}, "
                  f"{time.perf_counter() - started:.0f} s so far", file=sys.stderr, flush=True)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    any_row = next(iter(rows.values()))[0]
    print(f"Loopback scaling: BERT hidden {args.hidden} x {args.layers} layers "
          f"({any_row['parameters']:,} parameters, all-reduced as float32 every step), "
          f"sequence {args.seq_length}, global batch {args.global_batch}, {args.steps} timed "
          f"steps after {args.warmup} warm-up; {os.cpu_count()} CPU core(s), load average at "
          f"start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min); "
          f"{time.perf_counter() - started:.0f} s in all")
    print(table(rows, args.global_batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
