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

from bert_tf import fileio
from bert_tf.weights.canonical import WeightsError

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


_ITEMSIZE = {"BF16": 2, **{k: np.dtype(v).itemsize for k, v in _DTYPES.items()}}


def read_safetensors(path: str) -> dict:
    """name → numpy array (float tensors as float32).

    The header is checked against the file before any tensor is read: its length, and every
    entry's dtype, shape and data_offsets (inside the data section, of the size dtype × shape),
    so a truncated or inconsistent file is a WeightsError naming `path`, never a reshape error."""
    try:
        size = fileio.getsize(path)   # (a file that changes while read is caught below)
        with fileio.open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise WeightsError(f"{path}: not a safetensors file (too short: {size} bytes)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > size - 8:
                raise WeightsError(f"{path}: not a safetensors file, or truncated (header length "
                                   f"{header_len} past the end of its {size} bytes)")
            raw_header = f.read(header_len)
            header = _parse_header(path, raw_header)
            body_size = size - 8 - header_len
            entries = _check_entries(path, header, body_size)
            body = f.read(body_size)
    except OSError as e:
        raise WeightsError(f"Cannot read {path}: {e}") from None
    if len(body) != body_size:
        raise WeightsError(f"{path}: changed while it was read ({len(body)} of {body_size} bytes)")
    tensors = {}
    for name, (dtype, shape, begin, end) in entries.items():
        raw = memoryview(body)[begin:end]
        if dtype == "BF16":
            # bfloat16 is the top half of a float32: widen by shifting into the high 16 bits.
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32).reshape(shape)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
            array = array.reshape(shape)
            if array.dtype == np.float16:
                array = array.astype(np.float32)
        tensors[name] = np.array(array)  # own the memory (the file buffer is released)
    return tensors


def _parse_header(path: str, raw: bytes) -> dict:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{path}: not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file (the header is not a JSON object)")
    return header


def _check_entries(path: str, header: dict, body_size: int) -> dict:
    """name → (dtype, shape, begin, end) with every field checked against the data section."""
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise WeightsError(f"{path}: tensor {name!r} needs dtype, shape and data_offsets in "
                               f"the header, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ITEMSIZE:
            raise WeightsError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        if (not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise WeightsError(f"{path}: tensor {name} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise WeightsError(f"{path}: tensor {name} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if end > body_size:
            raise WeightsError(f"{path}: truncated: tensor {name} ends at byte {end} of a data "
                               f"section of {body_size} bytes")
        expected = int(np.prod(shape, dtype=np.int64)) * _ITEMSIZE[dtype]
        if end - begin != expected:
            raise WeightsError(f"{path}: tensor {name} ({dtype} {shape}) needs {expected} bytes, "
                               f"its data_offsets span {end - begin}")
        entries[name] = (dtype, tuple(shape), begin, end)
    return entries


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """Writes float32 tensors (name-sorted, as the reference implementation does)."""
    from safetensors.numpy import save, save_file
    arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()}
    metadata = metadata or {"format": "pt"}
    if fileio.is_remote(path):
        with fileio.open(path, "wb") as f:
            f.write(save(arrays, metadata=metadata))
    else:
        save_file(arrays, path, metadata=metadata)


def shard_path(index_path: str, directory: str, shard) -> str:
    """The path of a shard named in `index_path`'s weight_map: a relative file name inside
    `directory` (no absolute path, no '..', no empty name); else a WeightsError naming the index.
    The check is on the name, not the resolved path: a symlink inside the directory is followed
    (Hugging Face's cache links snapshot files to blobs elsewhere)."""
    if not isinstance(shard, str) or not shard:
        raise WeightsError(f"{index_path}: weight_map values must be shard file names, got "
                           f"{shard!r}")
    parts = shard.replace("\\", "/").split("/")
    if os.path.isabs(shard) or shard.startswith(("/", "\\")) or ".." in parts or (
            os.path.splitdrive(shard)[0]):
        raise WeightsError(f"{index_path}: shard {shard!r} lies outside {directory} (shards must "
                           f"be files inside the checkpoint directory)")
    return os.path.join(directory, *parts)


def read_sharded_index(directory: str, index_name: str) -> dict:
    """Loads every shard listed by a `*.safetensors.index.json` weight map; every shard must lie
    inside `directory` and hold the tensors the map assigns to it."""
    index_path = os.path.join(directory, index_name)
    try:
        with fileio.open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except OSError as e:
        raise WeightsError(f"Cannot read {index_path}: {e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{index_path}: not valid JSON ({e})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"{index_path}: no 'weight_map' object (tensor name -> shard file)")
    shards = {}
    for name, shard in weight_map.items():
        shards.setdefault(shard_path(index_path, directory, shard), []).append(name)
    tensors = {}
    for path in sorted(shards):
        if not fileio.isfile(path):
            raise WeightsError(f"{index_path}: shard {os.path.basename(path)} does not exist "
                               f"({path})")
        shard_tensors = read_safetensors(path)
        missing = sorted(set(shards[path]) - set(shard_tensors))
        if missing:
            raise WeightsError(f"{index_path}: {path} lacks tensors the weight_map puts there: "
                               f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
        tensors.update(shard_tensors)
    return tensors
