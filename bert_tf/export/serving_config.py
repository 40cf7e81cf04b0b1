"""Config files for `tensorflow_model_server`, written next to the models they serve.

    saved_models/models.config              one `config` entry per model dir under saved_models/
    saved_models/batching_parameters.txt    server-side batching (used with --enable_batching)

`base_path` is where the directory is mounted in the server's container (`/models` in
tensorflow/serving's docker image), not a path on this machine.

models.config is a text-format protobuf: names are written as escaped string literals
(`text_proto_string`), so a model directory named `it's` cannot break the file. New exports also
refuse model names a server URL cannot carry (`check_model_name`, before any work).
"""

from __future__ import annotations

import os
import re

from bert_tf import fileio
from bert_tf.atomic import write_text_atomic
from bert_tf.export.errors import ExportError

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
CONTAINER_ROOT = "/models"

# Modest server-side batching for CPU serving: up to 32 requests merged, waiting at most 2 ms.
DEFAULT_BATCHING = {"max_batch_size": 32, "batch_timeout_micros": 2000,
                    "max_enqueued_batches": 100, "num_batch_threads": 4}


# TF Serving names a model in its REST URL (/v1/models/NAME:predict) and gRPC ModelSpec: letters,
# digits, '.', '_', '-', not starting with '.' (hidden: the writers' temporaries start with '.').
MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def check_model_name(name: str, what: str = "the model name") -> str:
    if not MODEL_NAME.fullmatch(name or ""):
        raise ExportError(f"{what} {name!r} cannot name a TF Serving model: use letters, digits, "
                          f"'.', '_' and '-' (not first: '.')")
    return name


def text_proto_string(value: str) -> str:
    """`value` as a text-format protobuf string literal (single-quoted, C-style escapes)."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in "\\'\"":
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7f:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")   # octal: newlines, controls and UTF-8 bytes
    return "'" + "".join(out) + "'"


def model_names(root: str) -> list:
    """Model dirs under `root`: those holding at least one integer-named version dir."""
    names = []
    for name in sorted(fileio.listdir(root)):
        path = os.path.join(root, name)
        if fileio.isdir(path) and any(v.isdigit() for v in fileio.listdir(path)):
            names.append(name)
    return names


def models_config_text(names, container_root: str = CONTAINER_ROOT) -> str:
    entries = []
    for name in names:
        entries.append(
            "  config {\n"
            f"    name: {text_proto_string(name)}\n"
            f"    base_path: {text_proto_string(container_root + '/' + name)}\n"
            "    model_platform: 'tensorflow'\n"
            "    model_version_policy { latest { num_versions: 1 } }\n"
            "  }\n")
    return "model_config_list {\n" + "".join(entries) + "}\n"


def batching_parameters_text(parameters: dict = DEFAULT_BATCHING) -> str:
    return "".join(f"{key} {{ value: {value} }}\n" for key, value in parameters.items())


def write_server_configs(root: str) -> dict:
    """(Re)writes models.config (every model under `root`) and batching_parameters.txt."""
    paths = {"models_config": os.path.join(root, MODELS_CONFIG),
             "batching_parameters": os.path.join(root, BATCHING_PARAMETERS)}
    write_text_atomic(paths["models_config"], models_config_text(model_names(root)))
    write_text_atomic(paths["batching_parameters"], batching_parameters_text())
    return paths
