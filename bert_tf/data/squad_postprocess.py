"""Turn span-labeler logits back into SQuAD answers: n-best span decoding across windows.

This is google-research/bert's `write_predictions`, with one simplification: the answer text is
the context slice between the start token's first and the end token's last character (from the
per-token offsets), which is exact for any tokenizer and needs no detokenizing heuristics.

Per example, over all its features (windows):
* candidates are (start, end) pairs among each feature's `n_best_size` highest start and end
  logits, both on context tokens, start a max-context token, end >= start, at most
  `max_answer_length` tokens; candidates are ranked by start_logit + end_logit;
* the n best distinct answer texts are kept, with softmax probabilities over their scores;
* SQuAD 2.0 (`version_2_with_negative`): the null score is start[CLS] + end[CLS], its minimum over
  the example's features; the prediction is "" when
  null_score − (best non-null start + end logit) > `null_score_diff_threshold`.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Mapping, Sequence

import numpy as np


class SquadDecodeError(ValueError):
    """Logits, offsets and example ids that do not line up."""


@dataclasses.dataclass(frozen=True)
class SquadPredictions:
    predictions: dict      # example id -> answer text ("" = no answer)
    nbest: dict            # example id -> [{"text", "start_logit", "end_logit", "probability"}]
    null_score_diff: dict  # example id -> null score − best non-null score (2.0 only, else empty)


def as_offsets(offsets) -> np.ndarray:
    """[f, seq, 2] int offsets from arrays or nested lists whose non-context entries are None."""
    if isinstance(offsets, np.ndarray):
        return offsets.astype(np.int64)
    rows = [[(-1, -1) if span is None else tuple(span) for span in feature] for feature in offsets]
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), -1, 2)


def _top_indices(logits: np.ndarray, n: int) -> np.ndarray:
    # Stable sort on −logits: equal logits keep position order, so results are reproducible.
    return np.argsort(-logits, kind="stable")[:n]


def decode_spans(contexts: Mapping[str, str], example_ids: Sequence[str], offsets, start_logits,
                 end_logits, token_is_max_context=None, n_best_size: int = 20,
                 max_answer_length: int = 30, version_2_with_negative: bool = False,
                 null_score_diff_threshold: float = 0.0, attention_mask=None) -> SquadPredictions:
    """Decodes answers for every example that has features.

    attention_mask: [f, seq], or None. Padding positions (mask 0) take no part in the n-best
    start/end lists: the model's logits there are undefined (an export that cuts or packs
    padding returns zeros), so letting them crowd out real tokens would make the answer depend on
    how the padding was run. (run_squad ranks every position; on padding the two rules differ.)

    contexts: example id → context string. example_ids: [f] the example of each feature.
    offsets: [f, seq, 2] char spans into that context, (−1, −1) (or None) for non-context tokens.
    start_logits, end_logits: [f, seq]. token_is_max_context: [f, seq] bool, or None (all True).
    """
    offsets = as_offsets(offsets)
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    num_features = len(example_ids)
    if start_logits.ndim != 2 or start_logits.shape != end_logits.shape:
        raise SquadDecodeError(f"start/end logits must both be [features, seq], got {start_logits.shape}"
                               f" and {end_logits.shape}")
    if start_logits.shape[0] != num_features or offsets.shape[:2] != start_logits.shape:
        raise SquadDecodeError(f"{num_features} example ids, logits {start_logits.shape}, offsets "
                               f"{offsets.shape}: they must agree on [features, seq]")
    if token_is_max_context is None:
        token_is_max_context = np.ones(start_logits.shape, bool)
    token_is_max_context = np.asarray(token_is_max_context, bool)
    if attention_mask is not None:
        attention_mask = np.asarray(attention_mask)
        if attention_mask.shape != start_logits.shape:
            raise SquadDecodeError(f"attention_mask {attention_mask.shape} does not match logits "
                                   f"{start_logits.shape}")
        start_logits = np.where(attention_mask > 0, start_logits, -np.inf)
        end_logits = np.where(attention_mask > 0, end_logits, -np.inf)
    if token_is_max_context.shape != start_logits.shape:
        raise SquadDecodeError(f"token_is_max_context {token_is_max_context.shape} does not match "
                               f"logits {start_logits.shape}")
    if max_answer_length < 1 or n_best_size < 1:
        raise SquadDecodeError("max_answer_length and n_best_size must be at least 1")

    by_example = collections.OrderedDict()
    for f, example_id in enumerate(example_ids):
        if example_id not in contexts:
            raise SquadDecodeError(f"feature {f}: example id {example_id!r} has no context")
        by_example.setdefault(example_id, []).append(f)

    predictions, nbest_out, null_diff = {}, {}, {}
    for example_id, feature_indices in by_example.items():
        context = contexts[example_id]
        candidates = []  # (score, start_logit, end_logit, feature, start, end)
        null = None      # (score, start_logit, end_logit) of the lowest-scoring [CLS] span
        for f in feature_indices:
            s_logits, e_logits, spans = start_logits[f], end_logits[f], offsets[f]
            if spans.max(initial=-1) > len(context):
                raise SquadDecodeError(f"feature {f}: offsets reach past the end of the "
                                       f"{len(context)}-character context of {example_id!r}")
            if version_2_with_negative:
                score = s_logits[0] + e_logits[0]
                if null is None or score < null[0]:
                    null = (score, s_logits[0], e_logits[0])
            for start in _top_indices(s_logits, n_best_size):
                if spans[start, 0] < 0 or not token_is_max_context[f, start]:
                    continue
                for end in _top_indices(e_logits, n_best_size):
                    if spans[end, 0] < 0 or end < start or end - start + 1 > max_answer_length:
                        continue
                    candidates.append((s_logits[start] + e_logits[end], s_logits[start],
                                       e_logits[end], f, int(start), int(end)))
        if version_2_with_negative:
            # The null answer competes in the ranking at its own score (run_squad.py does the same).
            candidates.append((null[0], null[1], null[2], None, 0, 0))
        candidates.sort(key=lambda c: -c[0])  # stable: ties keep feature/position order

        nbest, seen = [], set()
        for score, s_logit, e_logit, f, start, end in candidates:
            if len(nbest) >= n_best_size:
                break
            text = "" if f is None else context[offsets[f, start, 0]:offsets[f, end, 1]]
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start_logit": float(s_logit), "end_logit": float(e_logit)})
        if version_2_with_negative and "" not in seen:
            # ...and is always listed, even when n_best_size better spans crowd it out.
            nbest.append({"text": "", "start_logit": float(null[1]), "end_logit": float(null[2])})
        if not nbest:
            # Nothing valid (every top logit off the context): answer empty, as run_squad's "empty".
            nbest.append({"text": "", "start_logit": 0.0, "end_logit": 0.0})
        scores = np.array([e["start_logit"] + e["end_logit"] for e in nbest])
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        for entry, p in zip(nbest, probabilities):
            entry["probability"] = float(p)
        nbest_out[example_id] = nbest

        best_non_null = next((e for e in nbest if e["text"]), None)
        if not version_2_with_negative:
            predictions[example_id] = nbest[0]["text"]
        elif best_non_null is None:
            predictions[example_id] = ""
            null_diff[example_id] = float("inf")
        else:
            diff = float(null[0] - best_non_null["start_logit"] - best_non_null["end_logit"])
            null_diff[example_id] = diff
            predictions[example_id] = "" if diff > null_score_diff_threshold else best_non_null["text"]
    return SquadPredictions(predictions, nbest_out, null_diff)


def decode_features(contexts: Mapping[str, str], features, start_logits, end_logits,
                    **kwargs) -> SquadPredictions:
    """`decode_spans` for a list of `squad_features.SquadFeature` (anything with example_id,
    offsets and token_is_max_context attributes), with logits [f, seq] in the same order."""
    return decode_spans(contexts, [f.example_id for f in features], np.stack([f.offsets for f in features]),
                        start_logits, end_logits,
                        np.stack([f.token_is_max_context for f in features]), **kwargs)
