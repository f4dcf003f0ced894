"""A branch's solution as the steps a reward model or a critic judges.

Its text is split at blank lines (never inside a ``` fence); a code block's output, as the model
saw it, is a step of its own. Each step remembers where it came from in the record, so a
reward can be shown on the text it scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..session import Step

_BLANK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Part:
    step: int  # index of the record step
    start: int
    end: int
    text: str


def solution_steps(steps: Sequence[Step]) -> list[Part]:
    parts: list[Part] = []
    for index, step in enumerate(steps):
        if step.kind == "code":
            if step.feedback.strip():
                parts.append(Part(index, 0, len(step.feedback), f"```output\n{step.feedback.strip()}\n```"))
            continue
        parts.extend(_paragraphs(index, step.text))
    return parts


def _paragraphs(index: int, text: str) -> list[Part]:
    cuts = [m for m in _BLANK.finditer(text) if text.count("```", 0, m.start()) % 2 == 0]
    parts, start = [], 0
    for end, after in [(m.start(), m.end()) for m in cuts] + [(len(text), len(text))]:
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            parts.append(Part(index, start + lead, start + len(piece.rstrip()), piece.strip()))
        start = after
    return parts
