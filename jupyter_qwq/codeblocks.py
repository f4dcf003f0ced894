"""Finding the Python a model wrote, while its reply is still streaming."""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n", re.IGNORECASE)
_CLOSE = re.compile(r"\n[ \t]*```")


@dataclass(frozen=True)
class CodeBlock:
    code: str
    end: int  # index just past the closing fence in the text searched


def first_complete_block(text: str, start: int = 0) -> CodeBlock | None:
    """The first ```python block of `text[start:]` whose closing fence has arrived."""
    opening = _OPEN.search(text, start)
    if opening is None:
        return None
    closing = _CLOSE.search(text, opening.end() - 1)
    if closing is None:
        return None
    code = text[opening.end() : closing.start()]
    return CodeBlock(code=code.strip("\n"), end=closing.end())
