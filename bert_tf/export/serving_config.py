"""Config files for `tensorflow_model_server`, written next to the models they serve.

    saved_models/models.config              one `config` entry per model dir under saved_models/
    saved_models/batching_parameters.txt    server-side batching (used with --enable_batching)

`base_path` is where the directory is mounted in the server's container (`/models` in
tensorflow/serving's docker image), not a path on this machine.
"""

from __future__ import annotations

import os

from bert_tf.atomic import write_text_atomic

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
CONTAINER_ROOT = "/models"

# Modest server-side batching for CPU serving: up to 32 requests merged, waiting at most 2 ms.
DEFAULT_BATCHING = {"max_batch_size": 32, "batch_timeout_micros": 2000,
                    "max_enqueued_batches": 100, "num_batch_threads": 4}


def model_names(root: str) -> list:
    """Model dirs under `root`: those holding at least one integer-named version dir."""
    names = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path) and any(v.isdigit() for v in os.listdir(path)):
            names.append(name)
    return names


def models_config_text(names, container_root: str = CONTAINER_ROOT) -> str:
    entries = []
    for name in names:
        entries.append(
            "  config {\n"
            f"    name: '{name}'\n"
            f"    base_path: '{container_root}/{name}'\n"
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
