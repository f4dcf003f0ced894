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

import functools
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jupyter_qwq.session import TallyItem, Vote

__all__ = ["Extracted", "extract_answer", "normalize", "equivalent", "vote", "decided"]

# Longer answers are compared as strings only: parsing and simplifying them can take minutes.
MAX_SYMBOLIC_CHARS = 500


@dataclass(frozen=True)
class Extracted:
    """A branch's final answer and where it was found: "boxed" or "fallback:<rule>"."""

    answer: str
    source: str


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

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
        while (inner := _whole_box(content)) is not None:  # \boxed{\boxed{5}}
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


def _whole_box(text: str) -> str | None:
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


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

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
    while (inner := _whole_box(s)) is not None:
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


# ---------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------


def equivalent(a: str, b: str) -> bool:
    """Whether two answers are the same mathematical answer. Symmetric; cached.

    Rule, in order:
    1. Equal after `normalize`, or after also dropping `\\%`, `\\text{}` and letter case
       ("50\\%" ≡ "50", "\\text{Yes}" ≡ "yes"). A percent sign is dropped, never rescaled:
       "0.5" is *not* "50\\%", because a vote must not merge 0.5 with an answer of 50.
    2. Bracketed lists must have the same kind of brackets: "(1,2)" is not "\\{1,2\\}"
       (Math-Verify reads "(1,2)" as an open interval and would call them equal). A bare
       list "1, 2" may match a set.
    3. Math-Verify, in both directions. `verify(gold, target)` is asymmetric on purpose and
       one direction alone is too loose: `verify(set, tuple)` holds for {1,2} and (2,1). The
       exceptions, where one direction is enough: both sides are plain expressions (no
       sets, tuples or relations), or one is an inequality and the other the interval or
       set it describes ("x > 1" ≡ "(1, \\infty)"), which Math-Verify accepts only with the
       inequality first.
    Answers longer than MAX_SYMBOLIC_CHARS, or with power towers or huge factorials, are
    compared by rule 1 only.
    """
    na, nb = normalize(a), normalize(b)
    if na == nb:
        return True
    return _equivalent_normalized(*sorted((na, nb)))


@functools.lru_cache(maxsize=65536)
def _equivalent_normalized(a: str, b: str) -> bool:
    ka, kb = _comparable(a), _comparable(b)
    if ka == kb:
        return True
    if _is_words(ka) or _is_words(kb):
        return False  # words are not products of symbols: "ab" is not "ba"
    words_a, words_b = _text_words(a), _text_words(b)
    if words_a and words_b and words_a != words_b:
        # Math-Verify drops \text{}: "4:30 \text{ p.m.}" would equal "4:30 \text{ a.m.}"
        return False
    shape_a, shape_b = _list_shape(ka), _list_shape(kb)
    if shape_a and shape_b and shape_a != shape_b and {shape_a, shape_b} != {"bare", "set"}:
        return False
    if _too_costly(ka) or _too_costly(kb):
        return False
    pa, pb = _parse(ka), _parse(kb)
    if not pa or not pb:
        return False
    forward, backward = _verify(pa, pb), _verify(pb, pa)
    if forward and backward:
        return True
    if not (forward or backward):
        return False
    kinds = {_kind(pa[0]), _kind(pb[0])}
    return kinds == {"expr"} or kinds == {"relation", "set"}


def _comparable(s: str) -> str:
    """The spelling that rule 1 compares: no percent sign, no \\text{}, lower case for words."""
    s = s.replace("\\%", "").strip()
    s = re.sub(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}", r"\1", s).strip()
    if re.fullmatch(r"\(\s*[A-Za-z]\s*\)", s):  # a multiple-choice letter: "(C)"
        s = s[1:-1].strip()
    if not re.search(r"[\\\d^_{}]", s):
        s = s.lower()
    if _is_words(s):
        return " ".join(s.split())
    # Drop spaces, except one that ends a command before a letter: "\pi r" must not become "\pir".
    s = re.sub(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])", "\\1\0", s)
    return re.sub(r"\s+", "", s).replace("\0", " ")


def _text_words(s: str) -> list[str]:
    """The letters and digits inside each \\text{} of `s`, lower case: "\\text{ p.m.}" -> "pm"."""
    found = re.findall(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}", s)
    return sorted(w for w in (re.sub(r"[^a-z0-9]", "", f.lower()) for f in found) if w)


def _is_words(s: str) -> bool:
    """Plain words ("odd", "june twenty"): more than one letter and no mathematics."""
    return bool(re.fullmatch(r"[a-z]+(?:\s+[a-z]+)*", s)) and len(s) > 1


def _list_shape(s: str) -> str:
    """How a comma list is bracketed: set, paren, bracket, interval, bare; "" for no list."""
    if not _has_top_level_comma(s):
        return ""
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set"
    pair = s[:1] + s[-1:]
    if pair == "()":
        return "paren"
    if pair == "[]":
        return "bracket"
    if pair in ("[)", "(]"):
        return "interval"
    return "bare"


def _has_top_level_comma(s: str) -> bool:
    depth = 0
    inner = s
    if s[:2] == "\\{" and s[-2:] == "\\}":
        inner = s[2:-2]
    elif s[:1] in "([" and s[-1:] in ")]":
        inner = s[1:-1]
    for char in inner:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


_POWER_TOWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\d+\s*\^|\^\s*\{?\s*\d{5,}")
_BIG_FACTORIAL = re.compile(r"\d{4,}\s*\}?\s*!")


def _too_costly(s: str) -> bool:
    """Inputs for which SymPy may run for minutes (there is no timeout to stop it)."""
    return len(s) > MAX_SYMBOLIC_CHARS or bool(_POWER_TOWER.search(s) or _BIG_FACTORIAL.search(s))


@functools.lru_cache(maxsize=16384)
def _parse(s: str) -> tuple:
    from math_verify import parse  # imported lazily: it pulls in SymPy and ANTLR

    _quiet_math_verify()
    try:
        return tuple(parse("$" + s + "$", parsing_timeout=None))
    except Exception:  # Math-Verify raises on some malformed LaTeX despite raise_on_error
        return ()


def _verify(gold: tuple, target: tuple) -> bool:
    from math_verify import verify

    try:
        return bool(verify(list(gold), list(target), timeout_seconds=None))
    except Exception:
        return False


def _kind(value: object) -> str:
    """expr (numbers and expressions), relation (equations, inequalities), set, other."""
    import sympy

    if isinstance(value, (sympy.Set,)):
        return "set"
    if isinstance(value, (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction)):
        return "relation"
    if isinstance(value, sympy.Expr) and not isinstance(value, sympy.Tuple):
        return "expr"
    return "other"


class _DropTimeoutWarning(logging.Filter):
    """Math-Verify warns once that timeouts are off; they are off on purpose (thread safety)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


@functools.cache
def _quiet_math_verify() -> None:
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutWarning())


# ---------------------------------------------------------------------------------------------
# Voting
# ---------------------------------------------------------------------------------------------


def vote(answers: Sequence[str | None] | Mapping[int, str | None]) -> Vote:
    """Group the branches' answers by equivalence and rank the groups.

    `answers` is indexed by branch: a sequence (index i is branch i) or {branch: answer}.
    None (and blank) answers are ignored. Each answer joins the first group, in order of
    creation, whose first member is equivalent to it. A group is shown by its most common
    normalised spelling (ties: the first seen).

    Tie rule: groups are ranked by count, then by their lowest branch index, so among groups
    with the same top count the one holding the lowest-numbered branch wins; `tie` is set.
    """
    items = sorted(answers.items()) if isinstance(answers, Mapping) else enumerate(answers)
    groups: list[list[tuple[int, str]]] = []  # members (branch, normalised), in branch order
    by_spelling: dict[str, list[tuple[int, str]]] = {}
    for branch, raw in items:
        if raw is None or not (spelling := normalize(raw)):
            continue
        group = by_spelling.get(spelling)
        if group is None:
            group = next((g for g in groups if equivalent(g[0][1], spelling)), None)
        if group is None:
            group = []
            groups.append(group)
        group.append((branch, spelling))
        by_spelling[spelling] = group

    tally = [
        TallyItem(answer=_display(g), count=len(g), branches=[b for b, _ in g]) for g in groups
    ]
    tally.sort(key=lambda t: (-t.count, min(t.branches)))
    answered = sum(t.count for t in tally)
    if not tally:
        return Vote()
    return Vote(
        answer=tally[0].answer,
        tally=tally,
        agreement=tally[0].count / answered,
        tie=len(tally) > 1 and tally[1].count == tally[0].count,
    )


def _display(group: list[tuple[int, str]]) -> str:
    counts = Counter(spelling for _, spelling in group)  # insertion order breaks ties
    return counts.most_common(1)[0][0]


def decided(vote: Vote, still_running: int) -> bool:
    """True when the branches still running cannot change the winner (lossless early stop).

    The worst case is that every running branch joins the runner-up, or founds a new group.
    The leader is safe only if `leader > runner_up + still_running`, strictly: at equality the
    result would be a tie, settled by the lowest branch index, and a still-running branch may
    have a lower index than any finished one, so `>=` could stop on a winner that loses.
    With nothing running, any vote that has an answer is decided.
    """
    if vote.answer is None or not vote.tally:
        return False
    if still_running <= 0:
        return True
    leader = vote.tally[0].count
    runner_up = vote.tally[1].count if len(vote.tally) > 1 else 0
    return leader > runner_up + still_running
