"""The decision settings of a solve as one plain value: made from a Solve, or built by a replay."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..confidence import DEFAULT_WINDOW

SCORES = ("none", "confidence", "prm", "critic")
VOTES = ("majority", "weighted", "best")
STOP_FORMS = "lossless, agree:K (K a whole number, e.g. agree:4), confidence or none"
_STOP = re.compile(r"^(lossless|confidence|none|agree:([1-9][0-9]*))$")


def parse_stop(text: str) -> tuple[str, int]:
    """('agree', 4) for 'agree:4'; (kind, 0) for the others; ValueError naming the forms."""
    found = _STOP.match(text.strip().lower())
    if found is None:
        raise ValueError(f"unknown stop rule {text!r}: use {STOP_FORMS}")
    kind = found.group(1)
    return ("agree", int(found.group(2))) if kind.startswith("agree") else (kind, 0)


@dataclass(frozen=True)
class Policy:
    """score × vote × stop, and their knobs (see the Solve traits of the same names)."""

    score: str = "none"
    measure: str = "lowest_group"
    window: int = DEFAULT_WINDOW
    vote: str = "majority"
    keep_top: float = 100.0
    stop: str = "lossless"
    warmup: int = 4
    percentile: float = 90.0
    consensus: float = 0.95

    @classmethod
    def from_config(cls, config: Any) -> Policy:
        return cls(score=config.score, measure=config.confidence_measure,
                   window=config.confidence_window, vote=config.vote, keep_top=config.keep_top,
                   stop=config.stop if config.early_stop else "none", warmup=config.warmup,
                   percentile=config.warmup_percentile, consensus=config.consensus)

    @property
    def stop_rule(self) -> tuple[str, int]:
        return parse_stop(self.stop)

    @property
    def cuts(self) -> bool:
        """Branches after the warm-up are cut mid-stream when their confidence falls."""
        return self.stop_rule[0] == "confidence"
