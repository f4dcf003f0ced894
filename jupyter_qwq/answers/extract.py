"""Finding a branch's final answer in what the model wrote: the last \\boxed{}, else a fallback."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Extracted:
    """A branch's final answer and where it was found: "boxed" or "fallback:<rule>"."""

    answer: str
    source: str


_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_PHRASE = re.compile(
    r"(?:(?:the|final) answer is|答案是)\s*:?\s*(.+?)\s*(?:\.\s|\.?$|\n)",
    re.IGNORECASE | re.MULTILINE,
)
# A number, or a fraction of integers written in LaTeX (else "-\\frac{24}{25}" would give "25").
_NUMBER = re.compile(
    r"-?\\[dt]?frac\{-?\d+\}\{\d+\}|-?\d+(?:,\d{3})+(?:\.\d+)?|-?\d*\.?\d+"
)
_PHRASE_MAX_CHARS = 80  # a longer "the answer is ..." tail is prose, not an answer


def extract_answer(text: str | None) -> Extracted | None:
    """The final answer of a model's output, or None when there is nothing usable.

    The last complete `\\boxed{...}` (or `\\fbox{...}`) wins. Without one, the last
    "the answer is X" / "final answer is X" phrase, then the last number in the text. Text after
    `</think>` is searched first with every rule; the thinking part only when it gives nothing.
    """
    if not text or not text.strip():
        return None
    head, sep, tail = text.rpartition("</think>")
    parts = [tail, head] if sep else [text]
    for part in parts:
        found = _extract_from(part)
        if found is not None:
            return found
    return None


def _extract_from(text: str) -> Extracted | None:
    boxed = _last_boxed(text)
    if boxed is not None:
        return Extracted(boxed, "boxed")
    phrase = _last_answer_phrase(text)
    if phrase is not None:
        return Extracted(phrase, "fallback:answer-phrase")
    numbers = _NUMBER.findall(text)
    if numbers:
        return Extracted(numbers[-1], "fallback:last-number")
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the last complete, non-empty box; unclosed boxes are skipped."""
    for match in reversed(list(_BOX_START.finditer(text))):
        content = _braced(text, match.end())
        if content is None:
            continue
        content = content.strip()
        while (inner := whole_box(content)) is not None:  # \boxed{\boxed{5}}
            content = inner.strip()
        if content:
            return content
    return None


def _braced(text: str, start: int) -> str | None:
    """The text from `start` up to the brace that closes the one just before it, or None.

    Escaped braces (`\\{`, `\\}`) are content, not structure: `\\boxed{\\{1,2\\}}`.
    """
    depth = 1
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def whole_box(text: str) -> str | None:
    """If `text` is exactly one box, its content."""
    match = _BOX_START.match(text)
    if match is None:
        return None
    content = _braced(text, match.end())
    if content is None or match.end() + len(content) + 1 != len(text):
        return None
    return content


def _last_answer_phrase(text: str) -> str | None:
    for match in reversed(list(_ANSWER_PHRASE.finditer(text))):
        candidate = match.group(1).strip().strip("$").strip()
        if candidate and len(candidate) <= _PHRASE_MAX_CHARS:
            return candidate
    return None

