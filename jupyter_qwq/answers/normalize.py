"""A light canonical spelling of an answer, for display and for grouping equal spellings fast."""

from __future__ import annotations

import re

from .extract import whole_box


_UNITS = (
    "square units|sq units|units|unit|square feet|square inches|square meters|square cm|"
    "cm\\^2|cm\\^3|m\\^2|cubic feet|cubic units|centimeters|centimetres|cm|millimeters|mm|"
    "kilometers|km|meters|metres|m|inches|inch|in|feet|foot|ft|yards|yd|miles|mph|"
    "degrees|degree|radians|dollars|cents|hours|hour|minutes|minute|seconds|second|sec|"
    "days|day|weeks|years|year|pounds|lbs|ounces|kg|grams|g|liters|litres|mL|ml|percent|"
    "people|students|ways|times|apples|marbles|books"
)
_TRAILING_TEXT_UNIT = re.compile(r"\s*\\(?:text|mbox|mathrm)\{\s*(?:" + _UNITS + r")\s*\}$")
_TRAILING_BARE_UNIT = re.compile(r"(?<=[\d}])\s+(?:" + _UNITS + r")$")  # "4 m", never "4m"
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_VARIABLE_PREFIX = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)\s*=\s*(?=\S)")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")


def normalize(answer: str) -> str:
    """A light canonical spelling: the same answer written in common ways comes out equal.

    Removes `$`, `\\left`/`\\right`, thin spaces, degree signs, a trailing period, trailing
    units, a single-variable `x =` prefix and thousands separators; `\\dfrac`/`\\tfrac` become
    `\\frac`. Tuples, sets and intervals keep their brackets and order. Idempotent.
    """
    s = answer.strip()
    while (inner := whole_box(s)) is not None:
        s = inner.strip()
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"(?<!\\)\\(?=\d)", "", s)  # "\\15": a dollar sign that lost its "$"
    s = _strip_math_delimiters(s)
    s = _LEFT_RIGHT.sub("", s)
    # Thin spaces become spaces ("1\\,000" -> "1 000", joined below); "\\\\" (a new row) stays.
    s = re.sub(r"(\\\\)|\\[!,;: ]", lambda m: m.group(1) or " ", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = _DEGREES.sub("", s)
    s = s.replace("{,}", ",")
    s = re.sub(r"(?<!\\)%", r"\\%", s)
    s = s.strip().rstrip(".").strip()
    s = _TRAILING_TEXT_UNIT.sub("", s).strip() or s
    s = _TRAILING_BARE_UNIT.sub("", s).strip() or s
    if s.count("=") == 1 and "," not in s:
        s = _VARIABLE_PREFIX.sub("", s)
    s = re.sub(r"\s+", " ", s).strip()
    if re.fullmatch(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?", s):
        s = s.replace(" ", "")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    s = re.sub(r"\s*,\s*", ", ", s)
    s = re.sub(r"([(\[{])\s+", r"\1", s)
    s = re.sub(r"\s+([)\]}])", r"\1", s)
    return s.rstrip(".").strip()


def _strip_math_delimiters(s: str) -> str:
    s = s.strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)].strip()
    return s

