"""`TFLiteTaskRunner`: a converted `.tflite` answering like `bert-tf predict`, for every task.

A model converted with the tokenizer inside (classification, regression) runs its own
`serving_default`, one input at a time. A windowed task (NER, SQuAD) cannot hold its tokenization
and variable window count in TFLite's fixed shapes, so its `.tflite` is `serve_ids` (one window
[1, N]) and this runner does the rest on the host with the task's own graph functions: the task's
`serving_features` (the exact tokenizer, windows with the trained stride) → the TFLite model on
each window → the task's `decode`. Either way the answers are decoded by the one decoder that
predict and the SavedModel use.

A file with length signatures (`convert_tflite(lengths=...)`) is run at the shortest length that
holds each input: text models ask the file's `measure` signature how many positions the text
needs and call `serving_default_<L>`; windowed models run each window's real tokens (its
attention mask) on `serve_ids_<L>` and pad the per-position outputs back to N (the decoder never
reads padding). Padding is masked, so the answers are the full-length ones.
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from bert_tf.export.errors import ExportError
from bert_tf.export.serving_module import ID_NAMES
from bert_tf.export.tflite import interpreter, length_signature
from bert_tf.tasks.inference import concatenate_batches, decode_strings

_LENGTH = re.compile(r"^serve_ids_(\d+)$")


def signature_lengths(signatures) -> tuple:
    """The shorter lengths a `.tflite` has signatures for (`serve_ids_<L>`), sorted."""
    return tuple(sorted(int(m.group(1)) for m in map(_LENGTH.match, signatures) if m))


def length_runners(lite, name: str = "serve_ids") -> dict:
    """length → signature runner of `name` at every length the file holds (the full length's
    under the plain name), each made once."""
    full = int(lite.get_signature_runner("serve_ids").get_input_details()["input_ids"]["shape"][1])
    lengths = signature_lengths(lite.get_signature_list()) + (full,)
    return {length: lite.get_signature_runner(length_signature(name, length, full))
            for length in lengths}


def pick_length(needed: int, lengths: tuple) -> int:
    """The shortest of `lengths` (sorted, the last the full length) holding `needed` positions."""
    for length in lengths:
        if length >= needed:
            return length
    return lengths[-1]


class TFLiteTaskRunner:
    """runner(texts) for texts {input name: list of str} → {output name: numpy array [n, ...]},
    the names and values `bert_tf.tasks.inference.run_inference` gives (string outputs included:
    they are decoded with the task's label names on the host). `lengths_used` counts the
    signature length each input (or window) ran at."""

    def __init__(self, tflite_path, task):
        from bert_tf.tasks.registry import with_tokenizer
        from bert_tf.text import BertTokenizer
        self.path = os.fspath(tflite_path)
        self.lite = interpreter(self.path)
        signatures = self.lite.get_signature_list()
        self.ids_runner = self.lite.get_signature_runner("serve_ids")
        self.sequence_length = int(self.ids_runner.get_input_details()["input_ids"]["shape"][1])
        self.ids_runners = length_runners(self.lite)
        self.lengths = tuple(self.ids_runners)
        self.lengths_used = {}
        tokenizer = task.tokenizer
        if tokenizer.sequence_length != self.sequence_length:
            task = with_tokenizer(task, BertTokenizer(
                tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                sequence_length=self.sequence_length))
        self.task = task
        self.text_runners = (length_runners(self.lite, "serving_default")
                             if "serving_default" in signatures else None)
        self.text_runner = self.text_runners[self.sequence_length] if self.text_runners else None
        self.measure = (self.lite.get_signature_runner("measure")
                        if "measure" in signatures else None)
        # The model's raw outputs (logits, embeddings, ...): serve_ids returns exactly those.
        self.raw_output_names = tuple(self.ids_runner.get_output_details())
        # Outputs with one value per position ([1, N, ...]): padded back after a shorter run.
        self.positional = {name for name, detail in self.ids_runner.get_output_details().items()
                           if len(detail["shape"]) > 1 and detail["shape"][1] ==
                           self.sequence_length}

    def _signature(self, runners: dict, length: int):
        self.lengths_used[length] = self.lengths_used.get(length, 0) + 1
        return runners[length]

    def run_ids(self, features: dict) -> dict:
        """[W, N] id features → the model's outputs [W, ...], one window per TFLite call (each at
        the shortest length signature that holds its tokens)."""
        rows = int(np.shape(features["input_ids"])[0])
        outputs = {}
        for i in range(rows):
            needed = int(np.sum(np.asarray(features["attention_mask"][i]) != 0))
            length = pick_length(needed, self.lengths)
            window = {name: np.asarray(features[name][i:i + 1, :length], np.int32)
                      for name in ID_NAMES}
            for name, value in self._signature(self.ids_runners, length)(**window).items():
                if name in self.positional and length < self.sequence_length:
                    pad = [(0, 0)] * value.ndim
                    pad[1] = (0, self.sequence_length - length)
                    value = np.pad(value, pad)
                outputs.setdefault(name, []).append(value[0])
        if not outputs:
            raise ExportError("no windows to run")
        return {name: tf.constant(np.stack(values)) for name, values in outputs.items()}

    def __call__(self, texts: dict) -> dict:
        names = self.task.serving_input_names
        if set(texts) != set(names):
            raise ExportError(f"inputs {sorted(texts)}; this model takes {list(names)}")
        n = len(texts[names[0]])
        parts = []
        for i in range(n):
            one = {name: tf.constant([texts[name][i]], tf.string) for name in names}
            if self.text_runner is not None:
                inputs = {name: np.array([texts[name][i].encode("utf-8")], dtype=object)
                          for name in names}
                length = self.sequence_length
                if self.measure is not None:
                    length = pick_length(int(self.measure(**inputs)["length"][0]), self.lengths)
                outputs = self._signature(self.text_runners, length)(**inputs)
                # The .tflite's own outputs; string outputs (label names) are not in it, so the
                # task's decoder adds them from the model's raw outputs (which the text signature
                # returns under serve_ids' names), as it does in the SavedModel.
                raw = {name: tf.constant(outputs[name]) for name in self.raw_output_names}
                decoded = dict(self.task.decode(raw, {}, one))
                decoded.update({k: v for k, v in outputs.items() if k in decoded})
            else:
                features, state = self.task.serving_features(one)
                decoded = self.task.decode(self.run_ids(features), state, one)
            parts.append({name: np.asarray(value) for name, value in decoded.items()})
        return decode_strings(concatenate_batches(parts))
