"""What a benchmark ran on: thread counts (fixed before any framework starts), CPU features, load.

Thread counts must be set before TensorFlow creates its context and before torch runs its first
op; `fix_threads` does both and reports what each framework actually uses (inside an already
running TensorFlow, e.g. under pytest, the counts can no longer change and are reported as found).
"""

from __future__ import annotations

import os
import platform

CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def has_bf16_matmul() -> bool:
    """True where oneDNN runs bfloat16 matmuls natively (AVX512-BF16 or AMX); elsewhere bf16 is
    emulated and slower than float32, so the suite does not offer it."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fix_threads(threads: int) -> dict:
    """Pins intra-op threads of TensorFlow and torch to `threads` (inter-op to 1)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialized in this process: report what it has
    found = {"requested": threads,
             "tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
             "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    try:
        import torch
        torch.set_num_threads(threads)
        found["torch"] = torch.get_num_threads()
    except ImportError:
        found["torch"] = None
    return found


def describe(threads: dict) -> dict:
    flags = cpu_flags()
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    import keras
    import tensorflow as tf
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    for name in ("torch", "transformers", "keras_hub", "ai_edge_litert", "onnxruntime"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    return {
        "cpu": model, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "cpu_features": sorted(f for f in CPU_FEATURES if f in flags),
        "bf16_native": has_bf16_matmul(), "threads": threads, "versions": versions,
        "load_average_1_5_15": list(os.getloadavg()),
    }
