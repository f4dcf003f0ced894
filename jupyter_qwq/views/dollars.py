"""Dollar signs: math or money.

A model writes `$x^2$` for math and "$80,000" for money, and every viewer that typesets (MathJax
in JupyterLab, nbviewer, nbconvert's HTML) pairs any two dollar signs in a run of text. So a `$`
counts as math only by pandoc's rule: an opening `$` has a non-space right after it, the closing
one a non-space right before it and no digit after it ("$80,000 and then puts in $50,000" holds
no math). Every other `$` is shown as a dollar in an element of its own, which MathJax does not
pair across (an HTML entity, so no markdown math parser sees a `$` either).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$(?=\S)[^$\n]*?(?<=\S)\$(?!\d)", re.DOTALL)
DOLLAR = "<span>&#36;</span>"


def math_and_text(text: str) -> Iterator[tuple[str, bool]]:
    """`text` in pieces, each with whether it is math (delimiters included)."""
    last = 0
    for match in MATH.finditer(text):
        yield text[last:match.start()], False
        yield match.group(0), True
        last = match.end()
    yield text[last:], False


def money(text: str) -> str:
    """Text that is not math, its dollar signs (`$` or an escaped `\\$`) made plain dollars."""
    return re.sub(r"\\?\$", DOLLAR, text)
