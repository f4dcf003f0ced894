"""The model's text as HTML: markdown rendered, math left as TeX for the viewer's MathJax, money
dollars kept as text, code highlighted with Pygments.

As JupyterLab renders a markdown cell, math is taken out before the markdown parser sees it and
put back after (dollars.py decides what is math). The text is untrusted: the parser is set to
escape raw HTML, remote images are not loaded, and links may not run script.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from .dollars import DOLLAR, MONEY_SIGN, pieces

_PLACEHOLDER = re.compile(r"@@qwq(\d+|D)@@")
PRE_STYLE = "margin:2px 0;padding:4px 6px;white-space:pre-wrap;background:var(--jp-layout-color2,#f5f5f5)"


def code_html(code: str, language: str = "python") -> str:
    """A block of code, highlighted with inline styles (no stylesheet needed), in a <pre>."""
    try:
        lexer = get_lexer_by_name(language) if language else PythonLexer()
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _formatter()) if lexer else html.escape(code)
    return f"<pre style='{PRE_STYLE}'><code>{body.rstrip(chr(10))}</code></pre>"


@lru_cache(maxsize=1)
def _formatter() -> HtmlFormatter:
    return HtmlFormatter(nowrap=True, noclasses=True, style="default")


def _fence(code: str, language: str, _attrs: object) -> str:
    return code_html(code, language.split()[0] if language else "")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "highlight": _fence})
    return parser.enable("table").disable("image")


def prose_html(text: str) -> str:
    """`text` (markdown with math) as safe HTML whose math is TeX between its delimiters."""
    math: list[str] = []
    markdown = []
    for piece, kind in pieces(text):
        if kind == "math":
            math.append(html.escape(piece, quote=False))
            markdown.append(f"@@qwq{len(math) - 1}@@")
        elif kind == "text":
            markdown.append(MONEY_SIGN.sub("@@qwqD@@", piece))
        else:
            markdown.append(piece)
    rendered = _parser().render("".join(markdown))
    return _PLACEHOLDER.sub(lambda m: DOLLAR if m.group(1) == "D" else math[int(m.group(1))], rendered)
