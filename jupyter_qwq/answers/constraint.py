"""An answer constraint, as AIMO sets one ("an integer from 0 to 99999"): told to the model, and
answers outside it do not vote (they stay in the record, marked)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError
from .equivalence import parse_value
from .normalize import normalize

ANSWER_TYPES = ("any", "integer", "number")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class AnswerConstraint:
    """What kind of value an answer must be, and the closed range it must lie in."""

    kind: str = "any"  # one of ANSWER_TYPES
    low: float = -math.inf
    high: float = math.inf

    @classmethod
    def from_settings(cls, answer_type: str, answer_range: str) -> AnswerConstraint:
        low, high = parse_range(answer_range)
        return cls(answer_type.lower(), low, high)

    @property
    def active(self) -> bool:
        return self.kind != "any" or self.low > -math.inf or self.high < math.inf

    def describe(self) -> str:
        """What the model is told, e.g. "The answer is an integer from 0 to 99999."; "" for none."""
        if not self.active:
            return ""
        noun = {"integer": "an integer", "number": "a number"}.get(self.kind, "a number")
        if self.low > -math.inf and self.high < math.inf:
            where = f" from {_show(self.low)} to {_show(self.high)}"
        elif self.low > -math.inf:
            where = f" of at least {_show(self.low)}"
        elif self.high < math.inf:
            where = f" of at most {_show(self.high)}"
        else:
            where = ""
        return f"The answer is {noun}{where}."

    def violation(self, answer: str) -> str:
        """Why `answer` breaks the constraint ("not an integer", "outside 0:99999"); "" if it keeps it."""
        if not self.active:
            return ""
        value = _numeric_value(answer)
        if value is None:
            return "not an integer" if self.kind == "integer" else "not a number"
        if self.kind == "integer" and not value.is_integer:
            return "not an integer"
        if not self.low <= value <= self.high:
            low = _show(self.low) if self.low > -math.inf else ""
            high = _show(self.high) if self.high < math.inf else ""
            return f"outside {low}:{high}"
        return ""


def parse_range(text: str) -> tuple[float, float]:
    """"LO:HI" (either side may be empty) as (low, high); "" is no range. Bad text → ConfigError."""
    if not text.strip():
        return -math.inf, math.inf
    low_text, colon, high_text = text.partition(":")
    try:
        if not colon:
            raise ValueError
        low = float(low_text) if low_text.strip() else -math.inf
        high = float(high_text) if high_text.strip() else math.inf
        if math.isnan(low) or math.isnan(high):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"answer_range must be LO:HI, e.g. 0:99999 (leave a side empty for no bound), not {text!r}"
        ) from None
    if low > high:
        raise ConfigError(f"answer_range {text!r} is empty: its low end must not exceed its high end")
    return low, high


def _numeric_value(answer: str) -> Any:
    """The answer's exact real value (a SymPy number) when it is a single finite number:
    "1,000", "\\frac{84}{2}", "2^{10}", "x = 7"; None for anything else."""
    import sympy  # imported lazily, as Math-Verify is

    spelling = normalize(answer)
    if _PLAIN_NUMBER.fullmatch(spelling):
        return sympy.Rational(spelling)
    value = parse_value(spelling)
    if not isinstance(value, sympy.Expr) or value.free_symbols or not value.is_finite:
        return None
    value = sympy.nsimplify(value) if isinstance(value, sympy.Float) else value
    return value if value.is_real else None


def _show(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else f"{bound:g}"
