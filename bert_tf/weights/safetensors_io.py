"""Reading and writing .safetensors files with numpy only (no torch needed).

We parse the format ourselves (8-byte header length, JSON header, raw little-endian buffers) because
`safetensors.numpy` cannot represent bfloat16, which many published checkpoints use; bf16 and f16
tensors are widened to float32 here.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from bert_tf.weights.canonical import WeightsError

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str) -> dict:
    """name → numpy array (float tensors as float32)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WeightsError(f"Cannot read {path}: {e}") from None
    if len(data) < 8:
        raise WeightsError(f"{path}: not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise WeightsError(f"{path}: not a safetensors file (header length {header_len} past the end)")
    try:
        header = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{path}: not a safetensors file (unreadable header)") from None
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = body[begin:end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            # bfloat16 is the top half of a float32: widen by shifting into the high 16 bits.
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32).reshape(shape)
        elif info["dtype"] in _DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
            array = array.reshape(shape)
            if array.dtype == np.float16:
                array = array.astype(np.float32)
        else:
            raise WeightsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        tensors[name] = np.array(array)  # own the memory (the file buffer is released)
    return tensors


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """Writes float32 tensors (name-sorted, as the reference implementation does)."""
    from safetensors.numpy import save_file
    arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()}
    save_file(arrays, path, metadata=metadata or {"format": "pt"})


def read_sharded_index(directory: str, index_name: str) -> dict:
    """Loads every shard listed by a `*.safetensors.index.json` weight map."""
    index_path = os.path.join(directory, index_name)
    with open(index_path, encoding="utf-8") as f:
        weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{index_path}: no 'weight_map' object")
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        tensors.update(read_safetensors(os.path.join(directory, shard)))
    return tensors
