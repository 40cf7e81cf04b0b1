"""`verify_tflite`: run a `.tflite` with ai-edge-litert next to the Keras model on real data and
measure how far apart they are.

Reported: max abs diff of the logits, agreement of predicted labels (argmax), the task metric for
both (accuracy, when gold labels are given) and its delta, file size, and mean latency per example
of the TFLite `serve_ids` (batch 1, one thread: what a phone-class CPU core does). With the
tokenizer inside, `serving_default` is run on the raw texts too, and its ids are compared with the
exact (regex/NFD) tokenizer's; differing rows are kept so they can be shown and explained.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf.export.serving_module import ID_NAMES
from bert_tf.export.tflite import interpreter
from bert_tf.export.tflite_runner import length_runners, pick_length, signature_lengths


def _compared(out) -> np.ndarray:
    """The output compared between Keras and TFLite: logits, embeddings, or SQuAD's start and
    end logits stacked [..., 2]."""
    for name in ("logits", "embeddings"):
        if name in out:
            return np.asarray(out[name])
    return np.stack([np.asarray(out["start_logits"]), np.asarray(out["end_logits"])], -1)


def _keras_logits(model, features, batch_size=64):
    n = len(features["input_ids"])
    outputs = []
    for i in range(0, n, batch_size):
        chunk = {k: v[i:i + batch_size] for k, v in features.items()}
        outputs.append(_compared(model(chunk, training=False)))
    return np.concatenate(outputs)


def _cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1),
                                        1e-30)


def verify_tflite(tflite_path, model, tokenizer, texts, gold_labels=None, progress=None) -> dict:
    """Compares `tflite_path` with Keras `model` on `texts` (strings, or (text, pair) tuples)."""
    from bert_tf.text import BertTokenizer
    lite = interpreter(os.fspath(tflite_path))
    runner = lite.get_signature_runner("serve_ids")
    sequence_length = int(runner.get_input_details()["input_ids"]["shape"][1])
    exact = BertTokenizer(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                          sequence_length=sequence_length)
    texts = list(texts)
    pairs = bool(texts) and isinstance(texts[0], tuple)
    segments = (tuple(tf.constant([t[i] for t in texts]) for i in range(2)) if pairs
                else tf.constant(texts))
    features = {k: np.asarray(v, np.int32) for k, v in exact(segments).items()}
    keras_logits = _keras_logits(model, features)
    lite_logits, seconds = [], 0.0
    for i in range(len(texts)):
        inputs = {k: features[k][i:i + 1] for k in ID_NAMES}
        start = time.perf_counter()
        out = runner(**inputs)
        seconds += time.perf_counter() - start
        lite_logits.append(_compared(out)[0])
        if progress:
            progress(i + 1, len(texts))
    lite_logits = np.stack(lite_logits) if lite_logits else np.zeros_like(keras_logits)
    keras_pred, lite_pred = keras_logits.argmax(-1), lite_logits.argmax(-1)
    report = {
        "examples": len(texts),
        "max_abs_diff": float(np.max(np.abs(keras_logits - lite_logits))) if texts else 0.0,
        "label_agreement": float(np.mean(keras_pred == lite_pred)) if texts else 1.0,
        "file_bytes": fileio.getsize(tflite_path),
        "latency_ms": 1000.0 * seconds / max(1, len(texts)),
        "keras_predictions": keras_pred, "tflite_predictions": lite_pred,
    }
    if texts and "embeddings" in runner.get_output_details():
        # Vectors, not labels: how close each TFLite vector is to Keras' in direction.
        cosines = _cosines(keras_logits, lite_logits)
        report["cosine_min"], report["cosine_mean"] = float(cosines.min()), float(cosines.mean())
        del report["label_agreement"]
    if gold_labels is not None:
        gold = np.asarray(gold_labels)
        report["keras_accuracy"] = float(np.mean(keras_pred == gold))
        report["tflite_accuracy"] = float(np.mean(lite_pred == gold))
        report["accuracy_delta"] = report["tflite_accuracy"] - report["keras_accuracy"]
    if "serving_default" in lite.get_signature_list():
        report.update(_verify_text_signature(lite, texts, features, pairs, lite_pred,
                                            lite_logits))
    if signature_lengths(lite.get_signature_list()):
        report.update(_verify_lengths(lite, features, keras_logits))
    return report


def _verify_lengths(lite, features, keras_logits) -> dict:
    """Each example on the shortest length signature that holds its tokens, against Keras at
    the full length: the largest difference over its real positions, whether every argmax
    agrees, and the mean batch-1 latency (the saving the signatures exist for)."""
    runners = length_runners(lite)
    lengths = tuple(runners)
    diff, agree, seconds, used = 0.0, 0, 0.0, {}
    n = len(features["input_ids"])
    for i in range(n):
        needed = int(features["attention_mask"][i].sum())
        length = pick_length(needed, lengths)
        used[length] = used.get(length, 0) + 1
        inputs = {k: features[k][i:i + 1, :length] for k in ID_NAMES}
        start = time.perf_counter()
        out = runners[length](**inputs)
        seconds += time.perf_counter() - start
        lite_value, keras_value = _compared(out)[0], keras_logits[i]
        if lite_value.shape != keras_value.shape:      # per position: its real positions
            lite_value, keras_value = lite_value[:needed], keras_value[:needed]
        diff = max(diff, float(np.max(np.abs(lite_value - keras_value))))
        agree += int(np.array_equal(lite_value.argmax(-1), keras_value.argmax(-1)))
    return {"length_signatures": list(lengths), "lengths_used": used,
            "lengths_max_abs_diff": diff, "lengths_label_agreement": agree / max(1, n),
            "lengths_latency_ms": 1000.0 * seconds / max(1, n)}


def _verify_text_signature(lite, texts, exact_features, pairs, lite_pred, lite_values) -> dict:
    runner = lite.get_signature_runner("serving_default")
    names = list(runner.get_input_details())
    differing, same_labels = [], 0
    for i, text in enumerate(texts):
        segments = text if pairs else (text,)
        inputs = {n: np.array([s.encode("utf-8")], dtype=object)
                  for n, s in zip(sorted(names, key=_input_order), segments)}
        out = runner(**inputs)
        if not np.array_equal(out["input_ids"][0], exact_features["input_ids"][i]):
            differing.append(i)
        if "logits" in out:
            same_labels += int(np.array_equal(out["logits"][0].argmax(-1), lite_pred[i]))
        elif "embeddings" in out:   # the text signature's vector is the ids signature's
            same_labels += int(_cosines(out["embeddings"][0], lite_values[i]) > 0.99999)
    return {"tokenizer_id_mismatches": len(differing), "tokenizer_mismatch_rows": differing,
            "text_signature_label_agreement_with_ids": same_labels / max(1, len(texts))}


def _input_order(name):
    return ("text", "question", "text_pair", "context").index(name) if name in (
        "text", "question", "text_pair", "context") else 9


def format_report(report: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"  examples                {report['examples']}")
    lines.append(f"  max abs diff (logits)   {report['max_abs_diff']:.3g}")
    if "label_agreement" in report:
        lines.append(f"  label agreement         {100 * report['label_agreement']:.2f}%")
    if "cosine_min" in report:
        lines.append(f"  cosine to Keras         min {report['cosine_min']:.6f}, mean "
                     f"{report['cosine_mean']:.6f}")
    if "keras_accuracy" in report:
        lines.append(f"  accuracy keras/tflite   {100 * report['keras_accuracy']:.2f}% / "
                     f"{100 * report['tflite_accuracy']:.2f}% "
                     f"(delta {100 * report['accuracy_delta']:+.2f} points)")
    lines.append(f"  file size               {report['file_bytes'] / 2**20:.1f} MiB")
    lines.append(f"  latency per example     {report['latency_ms']:.2f} ms (batch 1)")
    if "tokenizer_id_mismatches" in report:
        lines.append(f"  in-model tokenizer ids  {report['tokenizer_id_mismatches']} of "
                     f"{report['examples']} rows differ from the exact tokenizer")
    if "length_signatures" in report:
        used = ", ".join(f"{k}: {v}" for k, v in sorted(report["lengths_used"].items()))
        lines.append(f"  length signatures       {report['length_signatures']} (inputs per "
                     f"length: {used})")
        lines.append(f"    max abs diff / labels {report['lengths_max_abs_diff']:.3g} / "
                     f"{100 * report['lengths_label_agreement']:.2f}% agree with Keras")
        lines.append(f"    latency per example   {report['lengths_latency_ms']:.2f} ms (batch 1, "
                     f"shortest signature that fits)")
    return "\n".join(lines)
