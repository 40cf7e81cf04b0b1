"""A smaller student that starts from its teacher's own layers (DistilBERT, BERT-PKD "skip").

The student keeps the teacher's width (hidden size, heads, intermediate size, vocabulary,
positions) and takes K of its L transformer layers: layer j of the student is the teacher's layer
`student_layer_map(L, K)[j]` (every L/K-th by default, or the layers named by index); the
embeddings, the pooler and the task head are copied as they are.
Every tensor moves under its canonical (google-research/bert) name, through the same strict
assignment that loads checkpoints, so a student is complete or not built at all.
"""

from __future__ import annotations

import dataclasses
import re

from bert_tf import weights
from bert_tf.models.encoder import BertEncoder

_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")


def student_layer_map(teacher_layers: int, student_layers) -> tuple:
    """Which teacher layer each student layer starts from.

    `student_layers` is a count K: every (L/K)-th layer, ending with the top one (PKD-skip; 6 → 3
    gives (1, 3, 5), 6 → 2 gives (2, 5), 12 → 6 gives (1, 3, ..., 11)). The top layer is kept
    because the copied head was trained on its outputs. Or it is the teacher's layers by 0-based
    index, bottom to top (`--student-layers 0,2,5`), for a student that keeps lower layers
    (DistilBERT keeps layer 0) or any other cut."""
    if isinstance(student_layers, (tuple, list)):
        return _chosen_layer_map(teacher_layers, tuple(student_layers))
    if isinstance(student_layers, bool) or not isinstance(student_layers, int) or \
            student_layers < 1:
        raise ValueError(f"the student needs at least 1 layer, got {student_layers!r}")
    _check_smaller(student_layers, teacher_layers)
    return tuple(round((j + 1) * teacher_layers / student_layers) - 1
                 for j in range(student_layers))


def _chosen_layer_map(teacher_layers: int, layers: tuple) -> tuple:
    """Teacher layers named by index: each one exists, once, bottom to top (a student's layers
    keep the order they were trained in), and fewer than the teacher has."""
    if not layers:
        raise ValueError("the student needs at least 1 layer, got none")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise ValueError(f"teacher layers are 0-based integer indices, got {list(layers)}")
    outside = [i for i in layers if not 0 <= i < teacher_layers]
    if outside:
        raise ValueError(f"the teacher has layers 0 to {teacher_layers - 1}; "
                         f"{outside[0]} is not one of them")
    if any(b <= a for a, b in zip(layers, layers[1:])):
        raise ValueError(f"name each teacher layer once, bottom to top (a student keeps the "
                         f"order its layers were trained in), got {list(layers)}")
    _check_smaller(len(layers), teacher_layers)
    return layers


def _check_smaller(student_layers: int, teacher_layers: int) -> None:
    if student_layers >= teacher_layers:
        raise ValueError(f"a student of {student_layers} layers is not smaller than its "
                         f"{teacher_layers}-layer teacher")


def transfer_layer_map(teacher_layers: int, student_layers: int) -> tuple:
    """The teacher layer each layer of a student from another pre-trained encoder
    (`--student-init`) learns the hidden states and attention of: TinyBERT's uniform map, student
    layer j (1-based) <- teacher layer j * L / K, which is `student_layer_map`'s every (L/K)-th
    layer ending with the top one (the layer the teacher's head reads), and the identity for a
    student as deep as its teacher. Such a student has no layers of the teacher's to keep a
    choice of, so the map every PKD/TinyBERT student uses serves it too; a deeper student has no
    uniform map (two student layers would share a target), and is refused."""
    if student_layers > teacher_layers:
        raise ValueError(f"a student of {student_layers} layers is deeper than its "
                         f"{teacher_layers}-layer teacher: its layers have no uniform map onto the "
                         f"teacher's")
    if student_layers == teacher_layers:
        return tuple(range(teacher_layers))
    return student_layer_map(teacher_layers, student_layers)


def student_config(teacher_config, student_layers):
    """The teacher's config with the student's transformer layers (a count, or the teacher's
    layers by index: see `student_layer_map`)."""
    layer_map = student_layer_map(teacher_config.num_hidden_layers, student_layers)   # checks it
    return dataclasses.replace(teacher_config, num_hidden_layers=len(layer_map))


def student_encoder(teacher_encoder: BertEncoder, student_layers) -> BertEncoder:
    """A fresh `BertEncoder` of the student's layers (weights not yet copied: see
    `copy_teacher_weights`, which needs the task model built on it)."""
    # In the global dtype policy (mixed precision is the student's run's choice).
    return BertEncoder(student_config(teacher_encoder.config, student_layers))


def _renamed(tensors: dict, layer_map: tuple) -> dict:
    """Canonical tensors with layer j ← layer layer_map[j]; the other layers' dropped."""
    out = {}
    for name, value in tensors.items():
        match = _LAYER.match(name)
        if match is None:
            out[name] = value
            continue
        for j, i in enumerate(layer_map):
            if int(match.group(1)) == i:
                out[_LAYER.sub(f"bert/encoder/layer_{j}/", name)] = value
    return out


def copy_teacher_weights(teacher, student, layer_map: tuple) -> None:
    """Assigns every variable of the task model `student` from the task model `teacher`: student
    layer j ← teacher layer layer_map[j], all else (embeddings, pooler, head) by name."""
    from bert_tf.models.pretrained import task_model_slots
    tensors = _renamed(weights.collect(task_model_slots(teacher)), layer_map)
    weights.assign(task_model_slots(student), tensors, "the teacher's layers")


def truncated_encoder(encoder: BertEncoder, student_layers) -> BertEncoder:
    """A pre-trained encoder cut to `student_layers` of its layers (`student_layer_map`),
    embeddings and pooler kept: the DistilBERT-style start of a student that has no fine-tuned
    teacher to copy from (and the control a distilled student is compared with)."""
    layer_map = student_layer_map(encoder.config.num_hidden_layers, student_layers)
    student = student_encoder(encoder, student_layers)
    weights.assign(weights.encoder_slots(student),
                   _renamed(weights.collect(weights.encoder_slots(encoder)), layer_map),
                   "the encoder's layers")
    return student


__all__ = ["student_layer_map", "transfer_layer_map", "student_config", "student_encoder",
           "copy_teacher_weights", "truncated_encoder"]
