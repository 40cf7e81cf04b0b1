"""A run's training curves as one PNG, read from the run's own TensorBoard event files.

    OUT/curves.png   training loss and learning rate by step (the trainer logs them every
                     `log_every` steps), and each evaluation's metric by step with the best one
                     marked

The trainer writes its scalars to OUT/tensorboard as it goes; a resumed run appends new event
files, and steps a killed run logged before its last checkpoint are logged again: the latest
value of a step wins. Drawn by `bert_tf.plots` (matplotlib optional: without it nothing is
drawn).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from bert_tf import fileio
from bert_tf.plots import write_chart

logger = logging.getLogger(__name__)

CURVES_FILE = "curves.png"


def read_scalars(log_dir: str) -> dict:
    """{tag: [(step, value)] sorted by step} from every event file under `log_dir` (files in
    name order, i.e. in the order they were written; a later value of a step replaces an
    earlier one). Unreadable files and records are skipped: the curves are a view, not data."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2
    values = {}
    for path in sorted(fileio.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"),
                              recursive=True)):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = event_pb2.Event.FromString(record.numpy())
                for value in event.summary.value:
                    number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                              else float(value.simple_value))
                    values.setdefault(value.tag, {})[int(event.step)] = number
        except (tf.errors.DataLossError, ValueError, TypeError):
            logger.info("%s: unreadable event records skipped", path)
    return {tag: sorted(steps.items()) for tag, steps in values.items()}


def draw_curves(out_dir: str, metric: str | None = None, best_step: int | None = None,
                title: str | None = None) -> str | None:
    """Writes OUT/curves.png from OUT/tensorboard: train/loss, train/learning_rate and
    eval/<metric> by step (`best_step` marked). Returns the path, or None when matplotlib is
    not installed or the run logged nothing."""
    scalars = read_scalars(os.path.join(out_dir, "tensorboard"))
    panels = [("train/loss", "training loss", "loss"),
              ("train/learning_rate", "learning rate", "learning rate")]
    if metric is not None:
        panels.append((f"eval/{metric}", f"evaluation: {metric}", metric))
    panels = [p for p in panels if scalars.get(p[0])]
    if not panels:
        return None

    def draw(figure):
        for i, (tag, name, unit) in enumerate(panels):
            axes = figure.add_subplot(1, len(panels), i + 1)
            steps, values = (np.asarray(column) for column in zip(*scalars[tag]))
            style = "o-" if tag.startswith("eval/") or len(steps) <= 30 else "-"
            axes.plot(steps, values, style, markersize=4, linewidth=1.2)
            if tag.startswith("eval/") and best_step is not None \
                    and best_step in set(steps.tolist()):
                best = float(values[list(steps).index(best_step)])
                axes.plot([best_step], [best], "*", markersize=14, color="tab:red",
                          label=f"best: step {best_step}, {best:.4g}")
                axes.legend(loc="best", fontsize=8)
            if tag == "train/learning_rate":
                axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            axes.set_title(name, fontsize=10)
            axes.set_xlabel("step")
            axes.set_ylabel(unit)
            axes.grid(alpha=0.3)
        if title:
            figure.suptitle(title, fontsize=10)
    return write_chart(os.path.join(out_dir, CURVES_FILE), draw, size=(5 * len(panels), 3.6))
