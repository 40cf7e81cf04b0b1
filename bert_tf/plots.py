"""Charts as PNG files: matplotlib's Agg canvas (no display, no pyplot state), written atomically.

matplotlib is optional (the `plots` extra): without it `write_chart` draws nothing and says so in
the log. Each chart function returns a `draw(figure)` callable, so the figure is only built when
matplotlib is there.
"""

from __future__ import annotations

import io
import logging

import numpy as np

from bert_tf.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)


def write_chart(path: str, draw, size=(6.0, 4.0), dpi: int = 100) -> str | None:
    """Draws `draw(figure)` on a new figure of `size` inches and writes it to `path` (PNG).
    Returns the path, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed (pip install bert_tf[plots]): no %s", path)
        return None
    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    draw(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def confusion_matrix_chart(matrix, labels, title: str):
    """Rows = true label, columns = predicted; cells shaded by the row's share, with counts."""
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)

    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        colorbar = figure.colorbar(image, ax=axes)
        colorbar.set_label("share of the true label's examples")
        ticks = range(len(labels))
        axes.set_xticks(ticks, [str(x) for x in labels], rotation=45, ha="right")
        axes.set_yticks(ticks, [str(x) for x in labels])
        for i in ticks:
            for j in ticks:
                axes.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=9,
                          color="white" if shares[i, j] > 0.6 else "black")
        axes.set_xlabel("predicted label")
        axes.set_ylabel("true label")
        axes.set_title(title, fontsize=10)
    return draw


def grouped_bars(categories, series: dict, title: str, ylabel: str, ylim=None):
    """One group of bars per category, one bar per series ({name: values}), values printed."""
    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        width = 0.8 / max(len(series), 1)
        positions = np.arange(len(categories))
        for k, (name, values) in enumerate(series.items()):
            bars = axes.bar(positions + (k - (len(series) - 1) / 2) * width, values, width,
                            label=name)
            axes.bar_label(bars, fmt="%.2f", fontsize=7)
        axes.set_xticks(positions, [str(c) for c in categories], rotation=30, ha="right")
        axes.set_ylabel(ylabel)
        if ylim is not None:
            axes.set_ylim(*ylim)
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8)
        axes.grid(axis="y", alpha=0.3)
    return draw


def line_chart(xs, ys, title: str, xlabel: str, ylabel: str, ylim=None):
    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        axes.plot(xs, ys, "o-")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        if ylim is not None:
            axes.set_ylim(*ylim)
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
    return draw


def scatter_chart(x, y, title: str, xlabel: str, ylabel: str):
    """Points with the y = x diagonal (predicted against gold)."""
    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        axes.scatter(x, y, s=8, alpha=0.6)
        low, high = float(min(np.min(x), np.min(y))), float(max(np.max(x), np.max(y)))
        axes.plot([low, high], [low, high], color="black", linewidth=1)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
    return draw
