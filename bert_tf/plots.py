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


def write_chart(path: str, draw, size=(6.0, 4.0), dpi: int = 100,
                tight: bool = True) -> str | None:
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
    if tight:
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


def attention_grid(attention, title: str):
    """attention [layers, heads, s, s]: one small map per layer × head (rows = layers)."""
    attention = np.asarray(attention)
    layers, heads = attention.shape[:2]

    def draw(figure):
        grid = figure.subplots(layers, heads, squeeze=False)
        for layer in range(layers):
            for head in range(heads):
                axes = grid[layer][head]
                axes.imshow(attention[layer, head], cmap="viridis", vmin=0.0, vmax=1.0)
                axes.set_xticks([])
                axes.set_yticks([])
                if layer == 0:
                    axes.set_title(f"head {head}", fontsize=7)
                if head == 0:
                    axes.set_ylabel(f"layer {layer}", fontsize=7)
        figure.suptitle(title, fontsize=9)
    return draw


def attention_map(weights, labels, title: str):
    """weights [s, s] (rows: the attending token, columns: attended), labels on both axes."""
    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        image = axes.imshow(np.asarray(weights), cmap="viridis", vmin=0.0)
        figure.colorbar(image, ax=axes).set_label("attention probability")
        ticks = range(len(labels))
        axes.set_xticks(ticks, labels, rotation=90, fontsize=8)
        axes.set_yticks(ticks, labels, fontsize=8)
        axes.set_xlabel("attended token")
        axes.set_ylabel("attending token")
        axes.set_title(title, fontsize=9)
    return draw


def shaded_text(words, values, title: str):
    """The words in reading order, each on a box shaded by its value (red > 0, blue < 0,
    scaled by the largest magnitude), the value under the colour bar."""
    values = np.asarray(values, np.float64)
    scale = max(float(np.abs(values).max()), 1e-12)

    def draw(figure):
        from matplotlib import colormaps
        cmap = colormaps["RdBu_r"]
        axes = figure.add_axes([0.0, 0.0, 1.0, 0.82])
        axes.set_axis_off()
        x, y, line = 0.01, 0.85, 0.9 / max(1, 1 + sum(len(w) + 1 for w in words) // 90)
        for word, value in zip(words, values):
            width = 0.0095 * (len(word) + 1)
            if x + width > 0.99:
                x, y = 0.01, y - line
            axes.text(x, y, word, fontsize=10, va="top", family="monospace",
                      color="white" if abs(value) / scale > 0.6 else "black",
                      bbox={"facecolor": cmap(0.5 + 0.5 * value / scale), "edgecolor": "none",
                            "pad": 1.5})
            x += width
        figure.suptitle(title, fontsize=9)
    return draw


def marked_text(text: str, spans, title: str):
    """`text` in reading order with the character `spans` [(start, end, label)] on coloured
    boxes, each followed by its label."""
    segments, position = [], 0
    for start, end, label in sorted(spans):
        if start > position:
            segments.append((text[position:start], None))
        segments.append((text[start:end], label))
        position = max(position, end)
    segments.append((text[position:], None))
    labels = sorted({label for _, label in segments if label})

    def draw(figure):
        from matplotlib import colormaps
        colors = {label: colormaps["tab10"](i % 10) for i, label in enumerate(labels)}
        axes = figure.add_axes([0.0, 0.0, 1.0, 0.82])
        axes.set_axis_off()
        x, y = 0.01, 0.9
        for segment, label in segments:
            pieces = [segment] if label else segment.split(" ")
            for k, piece in enumerate(pieces):
                shown = piece + (f" [{label}]" if label else "")
                width = 0.0095 * (len(shown) + 1)
                if x + width > 0.99:
                    x, y = 0.01, y - 0.14
                if shown:
                    box = {"facecolor": colors[label], "alpha": 0.45, "edgecolor": "none",
                           "pad": 1.5} if label else None
                    axes.text(x, y, shown, fontsize=10, va="top", family="monospace", bbox=box)
                x += width if shown else 0.0095
        figure.suptitle(title, fontsize=9)
    return draw
