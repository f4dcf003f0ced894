"""How sure the model was while it wrote: DeepConf's token confidence, kept compactly.

Token confidence (DeepConf, arXiv 2508.15260) is minus the mean log-probability of the top k
candidates at a position: high when the model was sure. A branch keeps one value per generated
token, not the engine's raw lists.

In the record each text step holds its tokens' confidences as ``Step.confidence``: base64 of
little-endian uint16 hundredths (``round(c * 100)``, capped at 655.35). That is 2.7 bytes of
JSON per token, readable anywhere (the JupyterLab explorer decodes it the same way).
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import Sequence

SCALE = 100  # stored in hundredths
_MAX = 65535
LOWEST_LOGPROB = -100.0  # vLLM sends -9999.0 for -inf; one such value must not drown the mean
DEFAULT_WINDOW = 2048  # DeepConf's group size, in tokens
SPARK = "▁▂▃▄▅▆▇█"


def token_confidence(top_logprobs: Sequence[float]) -> float:
    """Minus the mean log-probability of the top candidates at one position."""
    values = [max(float(lp), LOWEST_LOGPROB) for lp in top_logprobs]
    return -sum(values) / len(values) if values else 0.0


class Trace:
    """Token confidences of one step as they stream, ready to encode at any moment."""

    def __init__(self) -> None:
        self._values = array("H")
        self.total = 0.0

    def __len__(self) -> int:
        return len(self._values)

    def extend(self, confidences: Sequence[float]) -> None:
        for value in confidences:
            self._values.append(min(_MAX, max(0, round(value * SCALE))))
            self.total += value

    def encoded(self) -> str:
        data = self._values
        if array("H", [1]).tobytes() != b"\x01\x00":  # big-endian host: store little-endian
            data = array("H", data)
            data.byteswap()
        return base64.b64encode(data.tobytes()).decode("ascii")


def decode(encoded: str) -> list[float]:
    """The confidences a step stored (empty when the engine gave none)."""
    if not encoded:
        return []
    data = array("H")
    data.frombytes(base64.b64decode(encoded))
    if array("H", [1]).tobytes() != b"\x01\x00":
        data.byteswap()
    return [value / SCALE for value in data]


def group_confidences(values: Sequence[float], window: int = DEFAULT_WINDOW) -> list[float]:
    """Mean confidence over each sliding window of `window` tokens (one window if shorter)."""
    if not values:
        return []
    size = max(1, min(window, len(values)))
    total = sum(values[:size])
    groups = [total / size]
    for i in range(size, len(values)):
        total += values[i] - values[i - size]
        groups.append(total / size)
    return groups


def lowest_group(values: Sequence[float], window: int = DEFAULT_WINDOW) -> float | None:
    """DeepConf's lowest group confidence: the least sure stretch of the trace."""
    groups = group_confidences(values, window)
    return min(groups) if groups else None


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """The trace in `width` block characters, each the mean of its stretch; scaled to its range."""
    if not values:
        return ""
    width = min(width, len(values))
    buckets = [values[len(values) * i // width: len(values) * (i + 1) // width] for i in range(width)]
    means = [sum(b) / len(b) for b in buckets if b]
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((m - low) / span * len(SPARK)))] for m in means)


def branch_trace(steps: Sequence) -> list[float]:
    """Every token confidence of a branch, in order, from its text steps."""
    return [value for step in steps if step.kind == "text" for value in decode(step.confidence)]

