"""Fine-tuned models across libraries on a whole real test split, both directions, against
transformers' own pipelines:

    ours:   a bert_tf model directory → `bert-tf convert` (BertFor*) → transformers' pipeline,
            against `bert-tf predict` on the same directory;
    theirs: a model fine-tuned by transformers → `bert-tf import` → `bert-tf export saved-model`
            (serving_default, raw text in) and `export tflite` (float32; the tokenizer inside for
            classifiers) → the served answers, against transformers' pipeline on the original.

    python tools/compare_finetune.py --task sentiment --train-limit 2000 --out runs/xchg_sent
    python tools/compare_interchange.py --task sentiment --run runs/xchg_sent --out runs/xchg_sent/x

`--run` is a `tools/compare_finetune.py` output (OUT/bert_tf, OUT/torch, OUT/data/test.*).
Sentiment compares labels and every class probability; NER compares entity spans (type and
character offsets in the words joined by spaces) with the pipeline's aggregation "first" (a
word's label is its first piece's, as bert_tf's NER has it) over the CoNLL words
(`is_split_into_words=True`). Prints one JSON object with the
counts and worst differences; exits 1 when a label or span differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*argv) -> None:
    from bert_tf.cli import main
    if main([str(a) for a in argv]) != 0:
        raise SystemExit(f"`bert-tf {' '.join(map(str, argv))}` failed")


def pipeline_answers(task: str, directory: str, texts: list) -> list:
    """transformers' pipeline on `texts`: {label: probability} or [(type, start, end)] each."""
    import transformers
    if task == "sentiment":
        pipe = transformers.pipeline("text-classification", model=directory, tokenizer=directory,
                                     top_k=None, device="cpu")
        return [{d["label"]: d["score"] for d in row}
                for row in pipe(texts, batch_size=32, truncation=True)]
    # The words are the CoNLL tokens, given as words (is_split_into_words): a tweet token such
    # as "#Apple" or "u.s." is one word for bert_tf's NER and would be several for the
    # pipeline's own pre-tokenizer on the joined string. Offsets are into the words joined by
    # spaces, as bert_tf's are.
    pipe = transformers.pipeline("token-classification", model=directory, tokenizer=directory,
                                 aggregation_strategy="first", device="cpu")
    return [[(e["entity_group"], e["start"], e["end"]) for e in row]
            for row in pipe([t.split(" ") for t in texts], batch_size=32,
                            is_split_into_words=True)]


def transformers_word_tags(directory: str, texts: list) -> list:
    """Each CoNLL word's tag as transformers' token-classification recipe (run_ner.py) reads a
    model: the words tokenized with is_split_into_words, truncated at model_max_length, the tag
    of each word's first piece (word_ids), "O" for words cut off."""
    import torch
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForTokenClassification.from_pretrained(directory).eval()
    names = model.config.id2label
    out = []
    for text in texts:
        words = text.split(" ")
        batch = tokenizer(words, is_split_into_words=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            predicted = model(**batch).logits[0].argmax(-1).tolist()
        tags, seen = ["O"] * len(words), set()
        for position, word in enumerate(batch.word_ids(0)):
            if word is not None and word not in seen:
                seen.add(word)
                tags[word] = names[predicted[position]]
        out.append(tags)
    return out


def our_answers(task: str, rows: list) -> list:
    if task == "sentiment":
        return [row["probabilities"] for row in rows]
    return [[(e["label"], e["start"], e["end"]) for e in row["entities"]] for row in rows]


def compare(task: str, got: list, expected: list) -> dict:
    """Counts of equal answers and, for classification, the worst probability difference."""
    assert len(got) == len(expected), (len(got), len(expected))
    if task == "sentiment":
        labels = [(max(g, key=g.get), max(e, key=e.get)) for g, e in zip(got, expected)]
        gaps = [max(abs(g[k] - e[k]) for k in e) for g, e in zip(got, expected)]
        return {"examples": len(got), "labels_equal": sum(a == b for a, b in labels),
                "max_probability_difference": max(gaps),
                "examples_over_1e-4": sum(gap > 1e-4 for gap in gaps)}
    return {"examples": len(got), "entity_lists_equal": sum(g == e for g, e in zip(got, expected)),
            "entities": sum(len(e) for e in expected)}


def served_rows(task_name: str, model_dir: str, version_dir: str, tflite: str, records, texts):
    """Rows (predict's format) from the SavedModel's serving_default and from the TFLite file."""
    import numpy as np
    import tensorflow as tf

    from bert_tf.export.tflite_runner import TFLiteTaskRunner
    from bert_tf.tasks.inference import decode_strings
    from bert_tf.tasks.model_dir import FinetunedModel
    task = FinetunedModel.load(model_dir).task
    serving = tf.saved_model.load(version_dir).signatures["serving_default"]
    # One request with every text (a test split is small): NER's entity outputs are padded to
    # the request's longest entity list, so separate requests would not concatenate.
    served = decode_strings({k: np.asarray(v)
                             for k, v in serving(text=tf.constant(texts)).items()})
    lite = TFLiteTaskRunner(tflite, task)
    return task.rows(records, served), task.rows(records, lite({"text": texts}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("sentiment", "ner"), required=True)
    parser.add_argument("--run", required=True, help="a tools/compare_finetune.py output")
    parser.add_argument("--out", required=True, help="where the converted models go")
    args = parser.parse_args(argv)
    from bert_tf.tasks import predict
    from bert_tf.tasks.model_dir import FinetunedModel
    test = os.path.join(args.run, "data", "test." + ("csv" if args.task == "sentiment" else "conll"))
    ours, theirs = os.path.join(args.run, "bert_tf"), os.path.join(args.run, "torch")
    os.makedirs(args.out, exist_ok=True)
    records = FinetunedModel.load(ours).task.read(test, labeled=False)
    texts = (list(records.texts) if args.task == "sentiment"
             else [" ".join(words) for words, *_ in records.sentences])
    report = {"task": args.task, "test": test}

    # ours → transformers
    ours_hf = os.path.join(args.out, "ours_hf")
    if not os.path.isdir(ours_hf):
        _cli("convert", "--input", ours, "--output", ours_hf)
    our_rows = predict(ours, data=test)
    report["ours_to_transformers"] = compare(
        args.task, our_answers(args.task, our_rows), pipeline_answers(args.task, ours_hf, texts))
    if args.task == "ner":
        report["ours_to_transformers"]["word_tags_equal"] = sum(
            row["tags"] == tags for row, tags in zip(our_rows, transformers_word_tags(ours_hf,
                                                                                      texts)))

    # transformers → bert_tf → SavedModel and TFLite
    imported = os.path.join(args.out, "theirs_imported")
    if not os.path.isdir(imported):
        _cli("import", theirs, "--out", imported)
    saved = os.path.join(args.out, "theirs_saved_model")
    if not os.path.isdir(os.path.join(saved, "1")):
        _cli("export", "saved-model", "--model", imported, "--out", saved, "--version", 1)
    tflite = os.path.join(args.out, "theirs.tflite")
    if not os.path.isfile(tflite):
        _cli("export", "tflite", "--model", imported, "--out", tflite, "--no-verify")
    expected = pipeline_answers(args.task, theirs, texts)
    from_saved, from_tflite = served_rows(args.task, imported, os.path.join(saved, "1"), tflite,
                                          FinetunedModel.load(imported).task.read(
                                              test, labeled=False), texts)
    report["transformers_to_saved_model"] = compare(args.task, our_answers(args.task, from_saved),
                                                    expected)
    report["transformers_to_tflite"] = compare(args.task, our_answers(args.task, from_tflite),
                                               expected)
    if args.task == "ner":
        tags = transformers_word_tags(theirs, texts)
        for key, rows in (("transformers_to_saved_model", from_saved),
                          ("transformers_to_tflite", from_tflite)):
            report[key]["word_tags_equal"] = sum(r["tags"] == t for r, t in zip(rows, tags))
    print(json.dumps(report, indent=1))
    # NER: the word tags must agree; the pipeline's entity spans may not where its
    # pre-tokenizer splits a CoNLL word (printed, not failed).
    key = "labels_equal" if args.task == "sentiment" else "word_tags_equal"
    ok = all(v[key] == v["examples"] for k, v in report.items() if isinstance(v, dict))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
