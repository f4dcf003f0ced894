"""Export solved notebooks: every `%%solve` cell becomes a readable, re-runnable worked solution.

    export_session(session, branch)          -> list of nbformat cells for one Session record
    export_notebook(nb, branch, source_name) -> a new notebook (pure; the input is not changed)
    export_file(path, to, out, branch)       -> Path of the written .ipynb / .html / .md
    export_command(argv, prog)               -> Path; the argument parsing of `jupyter-qwq export`
                                                and `%qwq export`

A solve cell is replaced by: the problem (markdown), the chosen branch's reasoning (markdown, its
math left as written, its thinking in a blockquote), its code as code cells carrying the outputs
that really ran, the vote table and the answer, and a provenance block. The result validates with
nbformat and re-runs top to bottom in a plain Python kernel: code that raised keeps its outputs and
the `raises-exception` tag (nbclient and "Run All" go on past it); code that timed out or crashed
its kernel is shown as markdown, not re-run, so a re-run ends in bounded time.

Everything the model wrote is untrusted. In markdown, raw HTML is neutralised (`<` becomes `&lt;`
outside math and code; `<` before a letter gets a space inside them, which TeX ignores). Outputs of
the model's code keep only text, PNG/JPEG/GIF images, LaTeX and JSON: HTML, SVG and JavaScript it
produced are dropped (their text/plain form stays). So the HTML nbconvert writes runs no script
of the model's.
"""

from __future__ import annotations

from .cells import choose_branch, export_session, find_sessions, public_endpoint, session_of_cell
from .files import export_command, export_file, export_parser, to_html, to_markdown
from .markdown import BRANCH_MODES, FORMATS, RERUN_TAG, safe_markdown
from .notebook import export_notebook

__all__ = [
    "BRANCH_MODES",
    "FORMATS",
    "RERUN_TAG",
    "choose_branch",
    "export_command",
    "export_file",
    "export_notebook",
    "export_parser",
    "export_session",
    "find_sessions",
    "public_endpoint",
    "safe_markdown",
    "session_of_cell",
    "to_html",
    "to_markdown",
]
