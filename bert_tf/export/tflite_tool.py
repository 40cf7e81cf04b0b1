"""`bert-tf export tflite` / tools/convert_tflite.py: load a fine-tuned model, convert, verify."""

from __future__ import annotations

from bert_tf.export.task_data import DEFAULT_DATASET, gold_label_ids, task_texts
from bert_tf.export.tflite import convert_tflite
from bert_tf.export.tflite_verify import format_report, verify_tflite


def convert_and_verify(model, out, quantize="none", with_tokenizer=None, sequence_length=None,
                       vocab=None, dataset=None, calibration_examples=300, verify_examples=None,
                       verify=True, log=print) -> dict:
    """Converts the model at `model` (a fine-tuned model directory, or a .keras file + vocab) to
    `out`; with `verify`, runs it against Keras on the dataset's test split (all of it unless
    `verify_examples`). with_tokenizer: None (default) puts the tokenizer and the task's decoding
    inside whenever the task's serving path fits TFLite."""
    from bert_tf.tasks.model_dir import load_model_source
    source = load_model_source(model, vocab=vocab)
    task = source.task
    dataset = dataset or source.settings.get("dataset") or DEFAULT_DATASET[source.task_type]
    calibration = None
    if quantize == "int8":
        calibration, _ = (task_texts(dataset, None) if dataset == "squad_fixture"
                          else task_texts(dataset, "dev", limit=calibration_examples))
    path = convert_tflite(source.model, out, quantize=quantize, sequence_length=sequence_length,
                          task=task, representative_data=calibration,
                          with_tokenizer=with_tokenizer)
    report = {"path": path}
    if verify:
        texts, gold = task_texts(dataset, None if dataset == "squad_fixture" else "test",
                                 limit=verify_examples)
        gold = (gold_label_ids(gold, task.label_names, dataset)
                if source.task_type == "classify" and gold is not None else None)
        report.update(verify_tflite(path, source.model, task.tokenizer, texts, gold_labels=gold))
        log(format_report(report, f"{path} ({quantize}) vs Keras on {dataset} test:"))
    return report
