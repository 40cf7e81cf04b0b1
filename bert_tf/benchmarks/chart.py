"""A PNG bar chart of the bert_tf / best-peer ratios (one bar per comparison, 1.0 marked)."""

from __future__ import annotations

import io

from bert_tf.atomic import write_bytes_atomic
from bert_tf.benchmarks.results import comparisons


def write_ratio_chart(path: str, rows, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    items = [(f"{m} {c}\n{o.impl} vs {b}", r) for m, c, o, _, r, b in comparisons(rows)
             if r is not None]
    figure, axes = plt.subplots(figsize=(10, 0.55 * max(len(items), 1) + 1.5))
    labels = [label for label, _ in items]
    ratios = [ratio for _, ratio in items]
    colors = ["tab:green" if r >= 1.0 else "tab:red" for r in ratios]
    axes.barh(range(len(items)), ratios, color=colors)
    axes.set_yticks(range(len(items)), labels, fontsize=7)
    axes.invert_yaxis()
    axes.axvline(1.0, color="black", linewidth=1)
    for i, ratio in enumerate(ratios):
        axes.text(ratio, i, f" {ratio:.2f}x", va="center", fontsize=7)
    axes.set_xlabel("bert_tf / best peer (> 1: bert_tf better)")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
