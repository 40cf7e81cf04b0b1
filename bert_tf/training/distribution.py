"""Choosing a `tf.distribute.Strategy` from a name, and the facts about it the trainer needs.

| name          | strategy                                   | when `auto` picks it             |
|---------------|--------------------------------------------|----------------------------------|
| one_device    | OneDeviceStrategy (first GPU, else CPU)    | at most one GPU and no TF_CONFIG |
| mirrored      | MirroredStrategy over all local GPUs (or   | several local GPUs               |
|               | all logical CPUs when there is no GPU)     |                                  |
| multi_worker  | MultiWorkerMirroredStrategy from TF_CONFIG | TF_CONFIG names a cluster        |
| tpu           | TPUStrategy: the TPU that TPU_NAME names   | a TPU is attached                |
|               | (a Cloud TPU, `local`, grpc://host:port),  |                                  |
|               | else the TPU attached to this machine      |                                  |

Without a TPU, `tpu` is one DistributionError before anything connects or is written (an
unreachable grpc:// worker too: connecting to it would wait indefinitely).
"""

from __future__ import annotations

import json
import logging
import os
import socket

import tensorflow as tf

logger = logging.getLogger(__name__)

STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


class DistributionError(RuntimeError):
    """The requested strategy cannot run here (the message says why)."""


def _tf_config() -> dict | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DistributionError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config, dict) or "cluster" not in config:
        raise DistributionError("TF_CONFIG must be a JSON object with a 'cluster' entry")
    return config


def cluster_workers() -> int:
    """How many training tasks (workers and chief) TF_CONFIG names; 1 without a TF_CONFIG."""
    config = _tf_config()
    if config is None:
        return 1
    cluster = config["cluster"]
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def resolve_strategy_name(name: str) -> str:
    """`auto` → the concrete strategy name for this machine; other names pass through."""
    if name not in STRATEGY_NAMES:
        raise DistributionError(f"unknown strategy {name!r}; choose one of {list(STRATEGY_NAMES)}")
    if name != "auto":
        return name
    if cluster_workers() > 1:
        return "multi_worker"
    if tf.config.list_logical_devices("TPU") or tf.config.list_physical_devices("TPU"):
        return "tpu"
    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "one_device"


def create_strategy(name: str = "auto") -> tf.distribute.Strategy:
    name = resolve_strategy_name(name)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if _tf_config() is None:
            raise DistributionError("strategy multi_worker needs TF_CONFIG (cluster and task) in "
                                    "the environment of every worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = _tpu_resolver()
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as e:
        # TensorFlow's message goes on to list every registered kernel: its first sentence
        # says what failed ("TPUs not found in the cluster").
        first = (str(e).strip() or type(e).__name__).splitlines()[0].split(". ", 1)[0]
        raise DistributionError(f"strategy tpu: no TPU found ({first[:200]}); {TPU_HINT}") \
            from None
    return tf.distribute.TPUStrategy(resolver)


TPU_HINT = ("on a Cloud TPU VM set TPU_NAME=local; for a TPU node or pod set TPU_NAME to its name "
            "or grpc://HOST:8470")


def _tpu_resolver():
    """The TPU that TPU_NAME names (a Cloud TPU's name, `local` or grpc://host:port), else the
    one attached to this machine; checked before connecting, which would wait for an absent
    TPU worker indefinitely."""
    name = os.environ.get("TPU_NAME") or None
    if name is None and tf.config.list_physical_devices("TPU"):
        name = "local"   # a TPU VM: the chips are on this machine
    try:
        # None: TensorFlow's own discovery (GKE and Cloud TPU environment variables).
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        master = resolver.master()   # a Cloud TPU's name is looked up here
    except (ValueError, RuntimeError, OSError, ImportError, tf.errors.OpError) as e:
        raise DistributionError(f"strategy tpu: no TPU found ({e}); {TPU_HINT}") from None
    if master.startswith("grpc://"):
        host, _, port = master[len("grpc://"):].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            raise DistributionError(f"strategy tpu: the TPU worker {master} does not answer "
                                    f"({e}); {TPU_HINT}") from None
    return resolver


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the shared outputs (checkpoints, summaries, exports)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def xla_supported(strategy: tf.distribute.Strategy) -> bool:
    """XLA-compiled steps work on one device of any kind, or on replicas that are all GPUs/TPUs;
    compiling under MirroredStrategy over several CPUs fails."""
    if isinstance(strategy, tf.distribute.TPUStrategy) or strategy.num_replicas_in_sync == 1:
        return True
    devices = getattr(strategy.extended, "worker_devices", ())
    return bool(devices) and all("GPU" in d.upper() for d in devices)
