"""Markdown and outputs made safe: the model's text and its code's outputs are untrusted."""

from __future__ import annotations

import copy
import re
from typing import Any

import nbformat
from nbformat import NotebookNode

from ...exceptions import ConfigError
from ...session import MIME_TYPE
from ..dollars import money, pieces

FORMATS = {"ipynb": ".ipynb", "html": ".html", "markdown": ".md"}
BRANCH_MODES = ("winner", "all")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RERUN_TAG = "raises-exception"
# Output types the model's code may bring into the export; HTML, SVG and JavaScript are dropped.
SAFE_MIMES = ("text/plain", "image/png", "image/jpeg", "image/gif", "text/latex", "application/json")
# Lines of other cells that need jupyter_qwq itself; commented out so a plain kernel runs the rest.
QWQ_LINE = re.compile(
    r"^\s*(?:%(?:re)?load_ext\s+jupyter_qwq\b|%qwq\b|%config\s+Solve\b|%%solve\b)", re.M
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PY_OPEN = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n", re.IGNORECASE)



_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def safe_markdown(text: str) -> str:
    """Model text as markdown that cannot carry raw HTML, with its math and code left as written.

    Fenced code blocks are kept verbatim (markdown shows them as text). Elsewhere `<` becomes
    `&lt;`, except inside math and inline code, where a `<` right before a letter gets a space after
    it (TeX ignores it; HTML then sees no tag). `![` becomes `!\\[`, so no remote image is fetched.
    A bare `\\boxed{..}` becomes inline math, so it shows boxed.
    """
    out: list[str] = []
    plain: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if plain:
            out.append(_escape_inline("\n".join(plain)))
            plain.clear()

    for line in text.split("\n"):
        if fence is None:
            opening = _FENCE.match(line)
            if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                flush()
                fence = opening.group(1)
                out.append(line)
            else:
                plain.append(line)
        else:
            out.append(line)
            if re.fullmatch(r" {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*", line):
                fence = None
    flush()
    return "\n".join(out)


def _escape_inline(text: str) -> str:
    """Plain text escaped; inline code and math left as written, but no tag can start in them."""
    return "".join(
        _escape_plain(piece) if kind == "text" else _TAG_START.sub("< ", _dollar_delimited(piece))
        for piece, kind in pieces(text)
    )


def _dollar_delimited(math: str) -> str:
    """\\[…\\] as $$…$$ and \\(…\\) as $…$: markdown reads a backslash before a bracket as an
    escape and drops it, and the math with it."""
    if math.startswith("\\["):
        return f"$${math[2:-2]}$$"
    if math.startswith("\\("):
        return f"${math[2:-2].strip()}$"
    return math


def _escape_plain(text: str) -> str:
    return money(text.replace("<", "&lt;").replace("![", "!\\["))


def math_inline(answer: str) -> str:
    """An answer to put between $…$ (inside a table too)."""
    text = str(answer).replace("$", "").replace("\n", " ").replace("|", "\\vert ")
    return _TAG_START.sub("< ", text)


def inline_code(value: Any) -> str:
    """A short value to put inside `code` or a table cell."""
    return str(value).replace("`", "'").replace("|", "/").replace("\n", " ").replace("<", "&lt;")


def one_line(text: str) -> str:
    return " ".join(text.split())


def fenced(text: str, info: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def output_text(output: dict[str, Any]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return _ANSI.sub("", _joined(output.get("text", "")))
    if kind == "error":
        return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}\n"
    data = output.get("data") or {}
    if "text/plain" in data:
        return _ANSI.sub("", _joined(data["text/plain"])) + "\n"
    return ""


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def markdown_cell(text: str, role: str, **meta: Any) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["jupyter_qwq"] = {"role": role, **meta}
    return cell


def clean_output(output: dict[str, Any], model_output: bool) -> NotebookNode | None:
    """A recorded output as a valid nbformat v4 output; None when nothing of it may be kept."""
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_joined(output.get("text", "")))
    if kind == "error":
        return nbformat.v4.new_output(
            "error", ename=str(output.get("ename", "")), evalue=str(output.get("evalue", "")),
            traceback=[str(line) for line in output.get("traceback") or []],
        )
    if kind not in ("display_data", "execute_result"):
        return None
    data = dict(output.get("data") or {})
    if WIDGET_VIEW in data or MIME_TYPE in data and model_output:
        return None
    if model_output:
        data = {mime: value for mime, value in data.items() if mime in SAFE_MIMES}
    if not data:
        return None
    metadata = copy.deepcopy(dict(output.get("metadata") or {}))
    if kind == "display_data":
        return nbformat.v4.new_output("display_data", data=data, metadata=metadata)
    return nbformat.v4.new_output("execute_result", data=data, metadata=metadata, execution_count=None)


def check_mode(branch: str) -> None:
    if branch not in BRANCH_MODES:
        raise ConfigError(f"--branch must be one of {', '.join(BRANCH_MODES)}, not {branch!r}")

