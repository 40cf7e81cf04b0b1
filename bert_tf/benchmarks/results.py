"""Result rows, the bert_tf / best-peer ratio of each comparison, the text table and the JSON file.

A *row* is one implementation measured in one case (e.g. P2, "batch 8", "keras_hub+xla"). Rows of
the same (measure, case) form a *comparison*; one of them is ours (`role="ours"`), the others are
peers. The ratio is ours / best peer, oriented so that > 1 means bert_tf is better: throughput
(higher is better) as ours/peer, latency (lower is better) as peer/ours.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from bert_tf.atomic import write_bytes_atomic
from bert_tf.benchmarks.timing import summarize


@dataclass
class Row:
    measure: str          # "P1" .. "P6"
    case: str             # e.g. "batch 8"
    impl: str             # e.g. "bert_tf xla", "hf torch"
    role: str             # "ours" | "peer" | "info" (shown, not compared)
    unit: str             # "seq/s", "sent/s", "ms"
    values: list          # one number per timed repetition
    higher_is_better: bool = True
    extra: dict = field(default_factory=dict)  # e.g. {"mfu": 0.8, "accuracy": 0.71}

    @property
    def stats(self) -> dict:
        return summarize(self.values)


def comparisons(rows) -> list:
    """[(measure, case, ours Row, [peer Rows], ratio or None, best peer impl)], one entry per
    "ours" row (a case may hold several bert_tf variants, each compared with the best peer)."""
    groups = {}
    for row in rows:
        groups.setdefault((row.measure, row.case), []).append(row)
    out = []
    for (measure, case), members in groups.items():
        peers = [r for r in members if r.role == "peer"]
        for ours in (r for r in members if r.role == "ours"):
            if not peers:
                out.append((measure, case, ours, peers, None, None))
                continue
            if ours.higher_is_better:
                best = max(peers, key=lambda r: r.stats["median"])
                ratio = ours.stats["median"] / best.stats["median"]
            else:
                best = min(peers, key=lambda r: r.stats["median"])
                ratio = best.stats["median"] / ours.stats["median"]
            out.append((measure, case, ours, peers, ratio, best.impl))
    return out


def format_table(rows) -> str:
    """Fixed-width text: one line per row, then one ratio line per comparison. The case and impl
    columns are as wide as their longest entry (plus a space), so long names never run together."""
    cw = max([len("case"), *(len(r.case) for r in rows)]) + 1
    iw = max([len("impl"), *(len(r.impl) for r in rows)]) + 1
    lines = [f"{'measure':<8}{'case':<{cw}}{'impl':<{iw}}{'median':>11}{'min-max':>23}  unit   extra"]
    for row in rows:
        s = row.stats
        extra = " ".join(f"{k}={_short(v)}" for k, v in row.extra.items())
        lines.append(f"{row.measure:<8}{row.case:<{cw}}{row.impl:<{iw}}{s['median']:>11.4g}"
                     f"{s['min']:>11.4g}-{s['max']:<11.4g} {row.unit:<6} {extra}")
    lines.append("")
    lines.append("ratio bert_tf / best peer (> 1: bert_tf better)")
    for measure, case, ours, _, ratio, best in comparisons(rows):
        if ratio is not None:
            lines.append(f"  {measure:<6}{case:<{cw}}{ours.impl:<{iw}}{ratio:7.2f}x  vs {best}")
    return "\n".join(lines)


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def to_json(rows, environment: dict) -> dict:
    return {
        "environment": environment,
        "rows": [{**asdict(r), **{k: v for k, v in r.stats.items() if k != "values"}} for r in rows],
        "ratios": [{"measure": m, "case": c, "ours": o.impl, "best_peer": b, "ratio": ratio}
                   for m, c, o, _, ratio, b in comparisons(rows) if ratio is not None],
    }


def write_json(path: str, rows, environment: dict) -> None:
    write_bytes_atomic(path, json.dumps(to_json(rows, environment), indent=2).encode("utf-8"))
