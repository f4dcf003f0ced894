"""Whether two answers are the same mathematical answer: normalisation, then Math-Verify.

Pure and safe to call from any thread: Math-Verify's signal-based timeouts are switched off, and
inputs that could make SymPy run for minutes are compared as strings.
"""

from __future__ import annotations

import functools
import logging
import re

from .normalize import normalize

# Longer answers are compared as strings only: parsing and simplifying them can take minutes.
MAX_SYMBOLIC_CHARS = 500


def equivalent(a: str, b: str) -> bool:
    """Whether two answers are the same mathematical answer. Symmetric; cached.

    Rule, in order:
    1. Equal after `normalize`, or after also dropping `\\%`, `\\text{}` and letter case
       ("50\\%" ≡ "50", "\\text{Yes}" ≡ "yes").
    2. Bracketed lists must have the same kind of brackets: "(1,2)" is not "\\{1,2\\}"
       (Math-Verify reads "(1,2)" as an open interval and would call them equal). A bare
       list, "1, 2" or "x=1 \\text{ or } x=2", may match any bracketing.
    3. Math-Verify, in both directions, on the normalised spellings (units in `\\text{}` and
       percent signs kept for it to read: "50\\%" ≡ "0.5", "166 \\text{cm}^2" ≡ "166").
       `verify(gold, target)` is asymmetric on purpose and one direction alone is too loose:
       `verify(set, tuple)` holds for {1,2} and (2,1). The exceptions, where one direction is
       enough: both sides are plain expressions (no sets, tuples or relations); one is an
       inequality and the other the interval or set it describes ("x > 1" ≡ "(1, \\infty)");
       one is an equation and the other the value of its right side ("|r-s| = 16" ≡ "16",
       "2+2+2=6" ≡ "6"). Math-Verify accepts the last two only in one direction.
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
    if "bare" not in (shape_a, shape_b) and shape_a and shape_b and shape_a != shape_b:
        return False
    if _too_costly(ka) or _too_costly(kb):
        return False
    # Math-Verify reads units in \text{} and percent signs itself: it is given the spelling
    # that still has them ("166 \text{cm}^2" is 166; without \text it would be 166 c m^2).
    pa, pb = _parse(a), _parse(b)
    if not pa or not pb:
        return False
    forward, backward = _verify(pa, pb), _verify(pb, pa)
    if forward and backward:
        return True
    if not (forward or backward):
        return False
    kinds = {_kind(pa[0]), _kind(pb[0])}
    if kinds == {"expr"} or kinds == {"relation", "set"}:
        return True
    # An equation against a value: "|r-s| = 16" is 16. Math-Verify compares the equation's
    # right side, only with the value first.
    value_first = forward if _kind(pa[0]) == "expr" else backward
    return kinds == {"expr", "relation"} and value_first and _is_equation(pa[0], pb[0])


def _is_equation(*values: object) -> bool:
    import sympy

    return any(isinstance(v, sympy.Eq) for v in values)


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
    words = (re.sub(r"[^a-z0-9]", "", f.lower()) for f in found)
    return sorted(w for w in words if w and w not in _CONNECTIVES)


_CONNECTIVES = {"or", "and"}  # "x=1 \text{ or } x=2" lists answers; the word is no unit


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


def parse_value(spelling: str) -> object | None:
    """The first value Math-Verify reads in a normalised answer; None when there is none, or
    when reading it could take minutes."""
    if _too_costly(spelling):
        return None
    parsed = _parse(spelling)
    return parsed[0] if parsed else None


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

