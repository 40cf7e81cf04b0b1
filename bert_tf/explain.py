"""`bert-tf explain`: what a fine-tuned model looked at, as pictures and JSON.

For one input of a model directory (its task's inputs: text [+ text_pair], or question +
context), through the task's own tokenization (the first window, for windowed tasks):

    attention_grid.png     every layer × head attention map over the real tokens
    attention_layer_L.png  layer L's head-averaged map, tokens (or words) on both axes
    attributions.png       (classification, regression) the input shaded by integrated-gradient
                           attributions to the predicted label's logit (the score)
    spans.png              (NER, QA) the predicted entities / answer marked on the text (all of
                           it: the task's windows cover the whole input; the attention maps
                           show the first window)
    explanation.json       tokens, words, the task's decoded answer, the attributions and their
                           completeness check, and whether the input was truncated

Integrated gradients (Sundararajan et al. 2017) over the input word embeddings: the baseline
replaces every token but [CLS] and [SEP] with [PAD] (positions and segments stay), the path
integral is a midpoint Riemann sum of `steps` points, all of them run as one batch through the
model's own forward pass (`BertTaskModel.forward(word_vectors=...)`). Completeness: the
attributions sum to f(input) - f(baseline); the relative error of that sum is reported (and
checked by the tests: within 2% at the default 64 steps on real models).

Word-pieces are merged back into words unless `pieces`: a word's attribution is the sum of its
pieces'; its attention row the mean of its pieces' rows, each summed over the key word's pieces
(so rows still sum to 1).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf import plots
from bert_tf.atomic import write_text_atomic
from bert_tf.tasks.inference import decode_strings, traced_serving_function
from bert_tf.tasks.model_dir import FinetunedModel

DEFAULT_STEPS = 64


class ExplainError(ValueError):
    """An input or option `explain` cannot use (the message says which)."""


@dataclasses.dataclass
class Explanation:
    inputs: dict                 # {input name: text}
    tokens: list                 # the real word-pieces of the (first) window, [CLS] ... [SEP]
    words: list                  # [(word, [piece index, ...])]
    attention: np.ndarray        # [layers, heads, tokens, tokens] float32
    answer: dict                 # the task's decoded answer for this input (JSON-able)
    truncated: bool              # the input had more pieces than its one window holds
    windows: int                 # windows the task cut the input into (attention: the first)
    attributions: np.ndarray | None = None   # [tokens]
    attribution: dict | None = None          # target, f(x), f(baseline), sum, relative_error
    spans: tuple | None = None               # (input name, [(start, end, label)]): NER, QA


def _jsonable(value):
    value = np.asarray(value)
    if value.dtype.kind in "SO":
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value.ravel().tolist()] \
            if value.ndim else (value.item().decode("utf-8") if isinstance(value.item(), bytes)
                                else value.item())
    return value.tolist()


def merge_words(tokens: list) -> list:
    """[(word, [piece indices])]: "##" pieces join the word before them."""
    words = []
    for i, token in enumerate(tokens):
        if token.startswith("##") and words:
            text, indices = words[-1]
            words[-1] = (text + token[2:], indices + [i])
        else:
            words.append((token, [i]))
    return words


def explain(loaded: FinetunedModel, inputs: dict, steps: int = DEFAULT_STEPS) -> Explanation:
    """The explanation of one input (see the module docstring). `inputs`: {name: str} for the
    task's `serving_input_names`."""
    task, model = loaded.task, loaded.model
    names = tuple(task.serving_input_names)
    if set(inputs) != set(names):
        raise ExplainError(f"a {loaded.task_type} model takes {' + '.join(names)}; got "
                           f"{' + '.join(sorted(inputs)) or 'nothing'}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ExplainError(f"--steps must be a positive integer, got {steps!r}")
    texts = {name: tf.constant([inputs[name]]) for name in names}
    features, _ = task.serving_features(texts)
    window = {name: np.asarray(value)[:1] for name, value in features.items()}    # [1, S]
    length = int(window["attention_mask"][0].sum())
    window = {name: value[:, :length] for name, value in window.items()}          # real tokens
    vocabulary = task.tokenizer.get_vocabulary()
    tokens = [vocabulary[i] for i in window["input_ids"][0]]
    pieces = sum(int(task.tokenizer.tokenize(tf.constant([inputs[n]])).flat_values.shape[0])
                 for n in names)
    windows = int(np.asarray(features["input_ids"]).shape[0])
    truncated = windows == 1 and pieces + len(names) + 1 > length
    _, attentions = model.encoder.encode(window, return_attention=True)
    attention = np.stack([np.asarray(a[0]) for a in attentions])                    # [L, H, S, S]
    answer = {k: _jsonable(v[0] if np.ndim(v) else v) for k, v in decode_strings(
        {k: np.asarray(v) for k, v in traced_serving_function(task, model)(texts).items()}).items()}
    explanation = Explanation(dict(inputs), tokens, merge_words(tokens), attention, answer,
                              bool(truncated), windows)
    explanation.spans = task.marked_spans(answer)
    target = task.attribution_target(model, window)
    if target is not None:
        name, score = target
        explanation.attributions, explanation.attribution = integrated_gradients(
            model, window, vocabulary, score, steps)
        explanation.attribution["target"] = name
    return explanation


def integrated_gradients(model, window: dict, vocabulary: list, target, steps: int) -> tuple:
    """(attributions [tokens], summary) of `target(outputs) -> [batch]` (the score explained)
    with respect to the word embeddings of `window` (one row [1, S])."""
    ids = window["input_ids"]                                                       # [1, S]
    specials = {vocabulary.index(t) for t in ("[CLS]", "[SEP]") if t in vocabulary}
    pad = vocabulary.index("[PAD]") if "[PAD]" in vocabulary else 0
    baseline_ids = np.where(np.isin(ids, list(specials)), ids, pad)
    table = model.encoder.embeddings.word_embeddings
    x = tf.gather(tf.convert_to_tensor(table), ids[0])                              # [S, h]
    x0 = tf.gather(tf.convert_to_tensor(table), baseline_ids[0])                    # [S, h]
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps                      # [m]
    path = x0[None] + alphas[:, None, None] * (x - x0)[None]                        # [m, S, h]
    batch = {name: np.repeat(value, steps, axis=0) for name, value in window.items()}
    with tf.GradientTape() as tape:
        tape.watch(path)
        scores = target(model.forward(batch, word_vectors=path))                    # [m]
    gradients = tape.gradient(scores, path)                                          # [m, S, h]
    attributions = tf.reduce_sum((x - x0) * tf.reduce_mean(gradients, axis=0), axis=-1)
    ends = target(model.forward({name: np.repeat(value, 2, axis=0)
                                 for name, value in window.items()},
                                word_vectors=tf.stack([x, x0])))                     # [2]
    expected = float(ends[0] - ends[1])
    total = float(tf.reduce_sum(attributions))
    return np.asarray(attributions), {
        "score": float(ends[0]), "baseline_score": float(ends[1]), "sum": total,
        "expected_sum": expected, "steps": steps,
        "relative_error": abs(total - expected) / max(abs(expected), 1e-12)}


# ---------------------------------------------------------------------------------- pictures
def word_attention(attention: np.ndarray, words: list) -> np.ndarray:
    """[..., S, S] piece attention → [..., W, W] word attention (see the module docstring)."""
    groups = [indices for _, indices in words]
    keys = np.stack([attention[..., g].sum(-1) for g in groups], axis=-1)            # [..., S, W]
    return np.stack([keys[..., g, :].mean(-2) for g in groups], axis=-2)             # [..., W, W]


def write_explanation(explanation: Explanation, out_dir: str, layer: int | None = None,
                      pieces: bool = False) -> list:
    """Writes the pictures and explanation.json into `out_dir`; returns the paths written.
    `layer`: the layer of the head-averaged map (default the last; negative counts from the
    end); `pieces`: word-pieces instead of words on the axes and in the shading."""
    layers = explanation.attention.shape[0]
    layer = layers - 1 if layer is None else layer
    if not -layers <= layer < layers:
        raise ExplainError(f"--layer {layer} is out of range: the model has {layers} layers "
                           f"(0 to {layers - 1}, or -1 to -{layers})")
    layer %= layers
    fileio.makedirs(out_dir, exist_ok=True)
    if pieces:
        labels, attention = explanation.tokens, explanation.attention
        attributions = explanation.attributions
    else:
        labels = [w for w, _ in explanation.words]
        attention = word_attention(explanation.attention, explanation.words)
        attributions = None if explanation.attributions is None else np.asarray(
            [explanation.attributions[i].sum() for _, i in explanation.words])
    note = (f" (input truncated to {len(explanation.tokens)} tokens, as predict does)"
            if explanation.truncated else
            f" (window 1 of {explanation.windows})" if explanation.windows > 1 else "")
    written = []
    grid = plots.write_chart(
        os.path.join(out_dir, "attention_grid.png"),
        plots.attention_grid(attention, f"attention, every layer × head{note}"),
        size=(1.1 * attention.shape[1] + 1, 1.1 * layers + 1))
    single = plots.write_chart(
        os.path.join(out_dir, f"attention_layer_{layer}.png"),
        plots.attention_map(attention[layer].mean(0), labels,
                            f"layer {layer}, mean of {attention.shape[1]} heads{note}"),
        size=(max(5.0, 0.3 * len(labels) + 2), max(4.5, 0.3 * len(labels) + 1.5)))
    written += [p for p in (grid, single) if p]
    if attributions is not None:
        summary = explanation.attribution
        path = plots.write_chart(
            os.path.join(out_dir, "attributions.png"),
            plots.shaded_text(labels, attributions,
                              f"integrated gradients of {summary['target']}: sum "
                              f"{summary['sum']:.4f} vs f(x) - f(baseline) "
                              f"{summary['expected_sum']:.4f}{note}"),
            size=(10.0, 1.0 + 0.45 * (1 + len(" ".join(labels)) // 90)), tight=False)
        if path:
            written.append(path)
    if explanation.spans is not None:
        name, spans = explanation.spans
        text = explanation.inputs[name]
        path = plots.write_chart(
            os.path.join(out_dir, "spans.png"),
            plots.marked_text(text, spans, f"predicted spans in the {name}: {len(spans)}"),
            size=(10.0, 1.2 + 0.5 * (1 + len(text) // 90)), tight=False)
        if path:
            written.append(path)
    report = {"inputs": explanation.inputs, "answer": explanation.answer,
              "tokens": explanation.tokens, "words": [w for w, _ in explanation.words],
              "truncated": explanation.truncated, "windows": explanation.windows,
              "layers": layers,
              "heads": int(explanation.attention.shape[1])}
    if explanation.attributions is not None:
        report["attribution"] = {
            **explanation.attribution,
            "tokens": [round(float(a), 6) for a in explanation.attributions],
            "words": [round(float(explanation.attributions[i].sum()), 6)
                      for _, i in explanation.words]}
    path = os.path.join(out_dir, "explanation.json")
    write_text_atomic(path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return written + [path]
