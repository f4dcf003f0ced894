"""A branch's confidence scores, DeepConf's definitions (arXiv 2508.15260), from its token trace.

Token confidence is kept per token in the record (confidence.py). From it:

- lowest_group: the minimum over sliding windows of `window` tokens of their mean (used online);
- tail: the mean of the last `window` tokens;
- bottom_10: the mean of the lowest tenth of the windows;
- mean: the mean over the whole trace.

High means the model was sure. A trace shorter than the window is one window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..confidence import DEFAULT_WINDOW, group_confidences

MEASURES = ("lowest_group", "tail", "bottom_10", "mean")


def confidence_scores(values: Sequence[float], window: int = DEFAULT_WINDOW) -> dict[str, float]:
    """Every measure of one trace, rounded for the record; empty when the engine gave none."""
    groups = group_confidences(values, window)
    if not groups:
        return {}
    lowest = sorted(groups)[: max(1, math.ceil(len(groups) / 10))]
    tail = values[-max(1, min(window, len(values))):]
    scores = {
        "lowest_group": min(groups),
        "tail": sum(tail) / len(tail),
        "bottom_10": sum(lowest) / len(lowest),
        "mean": sum(values) / len(values),
    }
    return {name: round(value, 4) for name, value in scores.items()}


def current_window(values: Sequence[float], window: int) -> float | None:
    """The mean of the last `window` tokens, once that many have streamed (None before)."""
    if window < 1 or len(values) < window:
        return None
    return sum(values[-window:]) / window


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct`th percentile, linear between ranks (numpy's default), of a non-empty list."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * min(100.0, max(0.0, pct)) / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
