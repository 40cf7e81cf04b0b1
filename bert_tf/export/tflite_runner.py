"""`TFLiteTaskRunner`: a converted `.tflite` answering like `bert-tf predict`, for every task.

A model converted with the tokenizer inside (classification, regression) runs its own
`serving_default`, one input at a time. A windowed task (NER, SQuAD) cannot hold its tokenization
and variable window count in TFLite's fixed shapes, so its `.tflite` is `serve_ids` (one window
[1, N]) and this runner does the rest on the host with the task's own graph functions: the task's
`serving_features` (the exact tokenizer, windows with the trained stride) → the TFLite model on
each window → the task's `decode`. Either way the answers are decoded by the one decoder that
predict and the SavedModel use.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from bert_tf.export.errors import ExportError
from bert_tf.export.serving_module import ID_NAMES
from bert_tf.export.tflite import interpreter
from bert_tf.tasks.inference import concatenate_batches, decode_strings


class TFLiteTaskRunner:
    """runner(texts) for texts {input name: list of str} → {output name: numpy array [n, ...]},
    the names and values `bert_tf.tasks.inference.run_inference` gives (string outputs included:
    they are decoded with the task's label names on the host)."""

    def __init__(self, tflite_path, task):
        from bert_tf.tasks.registry import with_tokenizer
        from bert_tf.text import BertTokenizer
        self.path = os.fspath(tflite_path)
        self.lite = interpreter(self.path)
        signatures = self.lite.get_signature_list()
        self.ids_runner = self.lite.get_signature_runner("serve_ids")
        self.sequence_length = int(self.ids_runner.get_input_details()["input_ids"]["shape"][1])
        tokenizer = task.tokenizer
        if tokenizer.sequence_length != self.sequence_length:
            task = with_tokenizer(task, BertTokenizer(
                tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                sequence_length=self.sequence_length))
        self.task = task
        self.text_runner = (self.lite.get_signature_runner("serving_default")
                            if "serving_default" in signatures else None)
        # The model's raw outputs (logits, embeddings, ...): serve_ids returns exactly those.
        self.raw_output_names = tuple(self.ids_runner.get_output_details())

    def run_ids(self, features: dict) -> dict:
        """[W, N] id features → the model's outputs [W, ...], one window per TFLite call."""
        rows = int(np.shape(features["input_ids"])[0])
        outputs = {}
        for i in range(rows):
            window = {name: np.asarray(features[name][i:i + 1], np.int32) for name in ID_NAMES}
            for name, value in self.ids_runner(**window).items():
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
                outputs = self.text_runner(**{name: np.array([texts[name][i].encode("utf-8")],
                                                             dtype=object) for name in names})
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
