"""`bert-tf export tflite` / tools/convert_tflite.py: load a fine-tuned model, convert, verify."""

from __future__ import annotations

import os

from bert_tf import fileio
from bert_tf.atomic import atomic_path
from bert_tf.export.errors import ExportError
from bert_tf.export.task_data import DEFAULT_DATASET, gold_label_ids, task_texts
from bert_tf.export.tflite import convert_tflite
from bert_tf.export.tflite_verify import format_report, verify_tflite


def convert_and_verify(model, out, quantize="none", with_tokenizer=None, sequence_length=None,
                       vocab=None, dataset=None, calibration_examples=300, verify_examples=None,
                       verify=True, keep_unverified=False, log=print, lengths=()) -> dict:
    """Converts the model at `model` (a fine-tuned model directory, or a .keras file + vocab) to
    `out`; with `verify`, runs it against Keras on the dataset's test split (all of it unless
    `verify_examples`). with_tokenizer: None (default) puts the tokenizer and the task's decoding
    inside whenever the task's serving path fits TFLite.

    The model is converted and verified under a hidden temporary name next to `out` and renamed
    to `out` only when verification passed (or `verify` is False): a verification that fails
    (raises) leaves `out` as it was, unless `keep_unverified`, which publishes the unverified
    model and still reports the failure (ExportError)."""
    from bert_tf.tasks.model_dir import load_model_source
    source = load_model_source(model, vocab=vocab)
    task = source.task
    dataset = dataset or source.settings.get("dataset") or DEFAULT_DATASET[source.task_type]
    calibration = None
    if quantize == "int8":
        calibration, _ = (task_texts(dataset, None) if dataset == "squad_fixture"
                          else task_texts(dataset, "dev", limit=calibration_examples))
    path = fileio.abspath(os.fspath(out))
    report = {"path": path}
    with atomic_path(path, suffix=".tflite") as staged:
        convert_tflite(source.model, staged, quantize=quantize, sequence_length=sequence_length,
                       task=task, representative_data=calibration,
                       with_tokenizer=with_tokenizer, lengths=lengths)
        if verify:
            try:
                report.update(_verify(staged, source, task, dataset, verify_examples))
            except Exception as e:
                if not keep_unverified:
                    raise ExportError(f"verification of the TFLite model failed, {path} was not "
                                      f"written (--keep-unverified keeps it): {e}") from e
                fileio.replace(staged, path)
                raise ExportError(f"verification of the TFLite model failed; kept the "
                                  f"unverified {path} (--keep-unverified): {e}") from e
    if verify:
        log(format_report(report, f"{path} ({quantize}) vs Keras on {dataset} test:"))
    return report


def _verify(tflite_path, source, task, dataset, verify_examples) -> dict:
    texts, gold = task_texts(dataset, None if dataset == "squad_fixture" else "test",
                             limit=verify_examples)
    gold = (gold_label_ids(gold, task.label_names, dataset)
            if source.task_type == "classify" and gold is not None else None)
    return verify_tflite(tflite_path, source.model, task.tokenizer, texts, gold_labels=gold)
