"""Answers: find a branch's final answer, normalise it, compare answers, and vote.

    extract_answer(text)   -> Extracted(answer, source) | None
    normalize(answer)      -> a light canonical spelling, for display and fast grouping
    equivalent(a, b)       -> mathematical equivalence (symmetric), via Math-Verify
    vote(answers)          -> Vote: answers grouped by equivalence, largest group first
    decided(vote, running) -> True when no still-running branch can change the winner

Everything here is pure and safe to call from any thread: Math-Verify's signal-based timeouts
are switched off, and inputs that could make SymPy run for minutes are compared as strings.
"""

from __future__ import annotations

from .equivalence import equivalent
from .extract import Extracted, extract_answer
from .normalize import normalize
from .vote import decided, vote

__all__ = ["Extracted", "decided", "equivalent", "extract_answer", "normalize", "vote"]
