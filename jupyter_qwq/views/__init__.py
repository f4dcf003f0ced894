"""The views of a Session record: each a function of the record, none keeping state of its own.

    facts.py     what every view shows, worded once
    html.py      static HTML (GitHub, nbviewer, any browser; no script)
    dollars.py   which dollar signs are math and which are money (and which text is code)
    prose.py     the model's text as HTML: rendered markdown, math for MathJax, Pygments code
    widgets.py   the live view in a notebook (ipywidgets)
    terminal.py  the terminal's live progress and summary (rich)
    export.py    a solved notebook as a clean notebook, HTML or Markdown

`mime_bundle(session)` is what a notebook saves: the record itself (for the JupyterLab
explorer), the static HTML and the answer as text.
"""

from __future__ import annotations

from typing import Any

from ..session import MIME_TYPE, Session

__all__ = ["mime_bundle"]


def mime_bundle(session: Session, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    from .facts import summary
    from .html import session_html

    return {MIME_TYPE: session.to_dict(), "text/html": session_html(session), "text/plain": summary(session)}
