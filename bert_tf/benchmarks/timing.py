"""Alternating repetitions: every implementation is timed in turn, round after round.

Timing A five times and then B five times lets a burst of load from another process land on one
side only. Interleaving (A B C, B C A, C A B, ...) spreads such bursts over all of them, so the
ratio of medians from one run is much steadier than the absolute numbers.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


class BenchmarkError(RuntimeError):
    """A benchmark cannot run as asked (bad size, missing peer, outputs that disagree)."""


@dataclass(frozen=True)
class Timings:
    """Seconds per repetition of one implementation, and how many items one repetition handles."""
    seconds: tuple
    items: int

    def throughputs(self) -> list:
        return [self.items / s for s in self.seconds]

    def latencies_ms(self) -> list:
        return [1000.0 * s / self.items for s in self.seconds]


def alternate(cases: dict, warmups: int, repeats: int) -> dict:
    """Times `cases` (name -> (callable, items per call)) in alternating rounds.

    Each callable is called `warmups` times first (compilation, caches), then `repeats` rounds run
    every case once, the starting case rotating each round. Returns name -> Timings.
    """
    if repeats < 1 or warmups < 0:
        raise BenchmarkError(f"need repeats >= 1 and warmups >= 0, got {repeats} and {warmups}")
    names = list(cases)
    for name in names:
        fn, _ = cases[name]
        for _ in range(warmups):
            fn()
    seconds = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            fn, _ = cases[name]
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: Timings(tuple(seconds[name]), cases[name][1]) for name in names}


def summarize(values) -> dict:
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}

