"""`bert-tf export tflite` / tools/convert_tflite.py: load a fine-tuning output, convert, verify."""

from __future__ import annotations

from bert_tf.export.model_dir import load_source
from bert_tf.export.task_data import DEFAULT_DATASET, gold_label_ids, task_texts
from bert_tf.export.tflite import convert_tflite
from bert_tf.export.tflite_verify import format_report, verify_tflite


def convert_and_verify(model, out, quantize="none", with_tokenizer=False, sequence_length=None,
                       vocab=None, dataset=None, calibration_examples=300, verify_examples=None,
                       verify=True, log=print) -> dict:
    """Converts the model at `model` (dir or .keras + vocab) to `out`; with `verify`, runs it
    against Keras on the dataset's test split (all of it unless `verify_examples`)."""
    source = load_source(model, vocab=vocab)
    sequence_length = sequence_length or source.spec.sequence_length
    dataset = dataset or DEFAULT_DATASET[source.spec.task]
    calibration = None
    if quantize == "int8":
        split = "dev" if dataset != "squad_fixture" else None
        calibration, _ = task_texts(dataset, split or "train", limit=calibration_examples) \
            if dataset != "squad_fixture" else task_texts(dataset, None)
    path = convert_tflite(source.model, out, quantize=quantize, sequence_length=sequence_length,
                          tokenizer=source.tokenizer if with_tokenizer else None,
                          representative_data=calibration, labels=source.spec.labels,
                          pair=source.spec.pair) if calibration is None or with_tokenizer else \
        _convert_with_calibration(source, out, quantize, sequence_length, calibration)
    report = {"path": path}
    if verify:
        texts, gold = task_texts(dataset, "test" if dataset != "squad_fixture" else None,
                                 limit=verify_examples)
        if source.spec.task != "classification" or gold is None:
            gold = None
        else:
            gold = gold_label_ids(gold, source.spec.labels, dataset)
        report.update(verify_tflite(path, source.model, source.tokenizer, texts, gold_labels=gold))
        log(format_report(report, f"{path} ({quantize}) vs Keras on {dataset} test:"))
    return report


def _convert_with_calibration(source, out, quantize, sequence_length, calibration):
    """int8 without the tokenizer inside: the texts still go through the (exact) tokenizer."""
    from bert_tf.export.tflite import representative_dataset
    generator = representative_dataset(source.tokenizer, calibration, sequence_length, False,
                                       source.spec)
    return convert_tflite(source.model, out, quantize=quantize, sequence_length=sequence_length,
                          representative_data=generator, labels=source.spec.labels,
                          pair=source.spec.pair)
