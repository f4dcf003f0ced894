"""Dollar signs: math or money; and which parts of the model's text are math or code.

A model writes `$x^2$` for math and "$80,000" for money, and every viewer that typesets (MathJax
in JupyterLab, nbviewer, nbconvert's HTML) pairs any two dollar signs in a run of text. So a `$`
counts as math only by pandoc's rule: an opening `$` has a non-space right after it, the closing
one a non-space right before it and no digit after it ("$80,000 and then puts in $50,000" holds
no math). Every other `$` is shown as a dollar in an element of its own, which MathJax does not
pair across (an HTML entity, so no markdown math parser sees a `$` either).

`pieces` also keeps code (fenced blocks, inline spans) out of the math, and makes a bare
`\\boxed{..}` inline math so that it shows as a boxed answer. labextension/src/dollars.ts is the
same rule for the JupyterLab explorer; both are tested on the same cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$(?=\S)[^$\n]*?(?<=\S)\$(?!\d)", re.DOTALL)
CODE = re.compile(r"(`{3,}|~{3,})[^\n]*\n.*?(?:\n\1[^\S\n]*(?=\n|\Z)|\Z)|(`+)[^`\n].*?\2(?!`)", re.DOTALL)
DOLLAR = "<span>&#36;</span>"
MONEY_SIGN = re.compile(r"\\?\$")  # a dollar sign in text that is not math, `\$` included
_BOXED = "\\boxed{"


def math_and_text(text: str) -> Iterator[tuple[str, bool]]:
    """`text` in pieces, each with whether it is math (delimiters included)."""
    last = 0
    for match in MATH.finditer(text):
        yield text[last:match.start()], False
        yield match.group(0), True
        last = match.end()
    yield text[last:], False


def pieces(text: str) -> list[tuple[str, str]]:
    """`text` in pieces of kind "text", "math" (delimiters included) or "code", in order."""
    out: list[tuple[str, str]] = []
    last = 0
    for match in CODE.finditer(text):
        _math_pieces(text[last:match.start()], out)
        out.append((match.group(0), "code"))
        last = match.end()
    _math_pieces(text[last:], out)
    return [(piece, kind) for piece, kind in out if piece]


def _math_pieces(text: str, out: list[tuple[str, str]]) -> None:
    for piece, math in math_and_text(text):
        if math:
            out.append((piece, "math"))
        else:
            _boxed_pieces(piece, out)


def _boxed_pieces(text: str, out: list[tuple[str, str]]) -> None:
    last, at = 0, text.find(_BOXED)
    while at >= 0:
        end = _closing_brace(text, at + len(_BOXED) - 1)
        if end < 0:
            break
        out.append((text[last:at], "text"))
        out.append((f"\\({text[at:end]}\\)", "math"))
        last, at = end, text.find(_BOXED, end)
    out.append((text[last:], "text"))


def _closing_brace(text: str, start: int) -> int:
    """The end (exclusive) of the brace group opening at `start`, or -1 when it does not close."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 1
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def money(text: str) -> str:
    """Text that is not math, its dollar signs (`$` or an escaped `\\$`) made plain dollars."""
    return MONEY_SIGN.sub(DOLLAR, text)
