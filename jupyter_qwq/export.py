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

import argparse
import copy
import json
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nbformat
from nbformat import NotebookNode

from ._version import __version__
from .codeblocks import first_complete_block
from .exceptions import ConfigError
from .session import MIME_TYPE, Branch, Session, Step

__all__ = [
    "BRANCH_MODES",
    "FORMATS",
    "choose_branch",
    "export_command",
    "export_file",
    "export_notebook",
    "export_parser",
    "export_session",
    "find_sessions",
    "safe_markdown",
]

FORMATS = {"ipynb": ".ipynb", "html": ".html", "markdown": ".md"}
BRANCH_MODES = ("winner", "all")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RERUN_TAG = "raises-exception"
# Output types the model's code may bring into the export; HTML, SVG and JavaScript are dropped.
SAFE_MIMES = ("text/plain", "image/png", "image/jpeg", "image/gif", "text/latex", "application/json")
# Lines of other cells that need jupyter_qwq itself; commented out so a plain kernel runs the rest.
_QWQ_LINE = re.compile(
    r"^\s*(?:%(?:re)?load_ext\s+jupyter_qwq\b|%qwq\b|%config\s+Solve\b|%%solve\b)", re.M
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PY_OPEN = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Finding the records
# ---------------------------------------------------------------------------------------------


def session_of_cell(cell: dict[str, Any]) -> Session | None:
    """The last Session record among a code cell's outputs, or None."""
    found = None
    for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        data = output.get("data") or {}
        if MIME_TYPE in data:
            record = data[MIME_TYPE]
            try:
                found = Session.from_dict(record if isinstance(record, dict) else _json(record))
            except (KeyError, TypeError, ValueError) as error:
                raise ConfigError(f"a %%solve output holds a record this version cannot read: {error}") from None
    return found


def find_sessions(nb: NotebookNode) -> list[tuple[int, Session]]:
    """(cell index, Session) of every cell whose outputs hold a record."""
    found = []
    for index, cell in enumerate(nb.cells):
        session = session_of_cell(cell)
        if session is not None:
            found.append((index, session))
    return found


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value)


def _is_solve_cell(cell: dict[str, Any]) -> bool:
    return cell.get("cell_type") == "code" and _source(cell).lstrip().startswith("%%solve")


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


# ---------------------------------------------------------------------------------------------
# Which branch
# ---------------------------------------------------------------------------------------------


def choose_branch(session: Session) -> Branch | None:
    """The branch to show: in the winning vote group, the first (lowest index) that ran code,
    else the first of the group; with no answer, the branch with the most steps."""
    if not session.branches:
        return None
    by_index = {b.index: b for b in session.branches}
    vote = session.vote
    group = next((item for item in vote.tally if item.answer == vote.answer), None)
    if group is None and vote.answer is not None and vote.tally:
        group = vote.tally[0]
    if group is not None:
        members = [by_index[i] for i in sorted(group.branches) if i in by_index]
        with_code = [b for b in members if any(s.kind == "code" for s in b.steps)]
        if with_code or members:
            return (with_code or members)[0]
    return max(session.branches, key=lambda b: (len(b.steps), -b.index))


# ---------------------------------------------------------------------------------------------
# One session -> cells
# ---------------------------------------------------------------------------------------------


def export_session(session: Session, branch: str = "winner") -> list[NotebookNode]:
    """The cells that present one solve: problem, branch(es), vote and answer, provenance."""
    _check_mode(branch)
    chosen = choose_branch(session)
    cells = [_markdown(f"## Problem\n\n{safe_markdown(session.problem)}", role="problem")]
    if branch == "winner":
        shown = [chosen] if chosen is not None else []
    else:
        shown = sorted(session.branches, key=lambda b: b.index)
    if not shown:
        cells.append(_markdown("*This solve has no branches.*", role="branch"))
    for b in shown:
        cells += _branch_cells(session, b, chosen=b is chosen, mode=branch)
    cells.append(_markdown(_vote_markdown(session), role="vote"))
    cells.append(_markdown(_provenance_markdown(session, chosen, branch), role="provenance"))
    return cells


def _branch_cells(session: Session, branch: Branch, chosen: bool, mode: str) -> list[NotebookNode]:
    title = "Solution" if mode == "winner" else f"Branch {branch.index}"
    facts = [f"branch {branch.index}" if mode == "winner" else "", f"prompt `{_inline(branch.prompt)}`",
             _status_text(branch)]
    if mode == "all" and chosen:
        facts.append("**shown as the solution**")
    head = f"### {title}\n\n" + " · ".join(f for f in facts if f)
    if branch.error:
        head += f"\n\n> Error: {safe_markdown(_one_line(branch.error))}"
    cells = [_markdown(head, role="branch", branch=branch.index)]
    tainted = False  # a step before was not re-run: later code may miss its state
    steps = branch.steps
    for number, step in enumerate(steps):
        if step.kind == "code":
            cell = _code_step(session, branch, step, number, tainted)
            tainted = tainted or cell.cell_type == "markdown"
            cells.append(cell)
        else:
            following = steps[number + 1] if number + 1 < len(steps) else None
            text = _text_step_markdown(step, following)
            if text.strip():
                cells.append(_markdown(text, role="reasoning", branch=branch.index, step=number))
    return cells


def _status_text(branch: Branch) -> str:
    status = branch.status.value.replace("_", " ")
    if branch.answer is None:
        return status
    source = " (fallback: no \\boxed answer)" if branch.answer_source.startswith("fallback") else ""
    return f"{status}: ${_math(branch.answer)}${source}"


def _text_step_markdown(step: Step, following: Step | None) -> str:
    text, reasoning = step.text, step.reasoning
    if "</think>" in text:  # a model that writes its thinking inline
        head, _, text = text.rpartition("</think>")
        reasoning = (reasoning + "\n" + head.replace("<think>", "")).strip()
    if following is not None and following.kind == "code":
        text = _without_block(text, following.code)
    parts = []
    if reasoning.strip():
        quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in
                           safe_markdown(reasoning.strip()).splitlines())
        parts.append(f"> **Thinking**\n>\n{quoted}")
    if text.strip():
        parts.append(safe_markdown(text.strip()))
    return "\n\n".join(parts)


def _without_block(text: str, code: str) -> str:
    """The text without the ```python block whose code ran next (it follows as a code cell)."""
    for opening in reversed(list(_PY_OPEN.finditer(text))):
        block = first_complete_block(text, opening.start())
        if block is not None and block.code == code.strip("\n") and not text[block.end:].strip():
            return text[: opening.start()]
    return text


def _code_step(session: Session, branch: Branch, step: Step, number: int, tainted: bool) -> NotebookNode:
    meta = {"branch": branch.index, "step": number, "execution": step.execution}
    if step.execution in ("timeout", "crashed"):
        return _markdown(_skipped_code_markdown(session, step), role="code-not-rerun", **meta)
    outputs = [o for o in (_clean_output(o, model_output=True) for o in step.outputs) if o]
    cell = nbformat.v4.new_code_cell(source=step.code, outputs=outputs)
    cell.metadata["jupyter_qwq"] = {"role": "code", **meta}
    if step.execution == "error" or tainted:
        # Raised in the original run (or may miss state of code that was not re-run):
        # keep it, and let "Run All" go on past it.
        cell.metadata["tags"] = [RERUN_TAG]
    return cell


def _skipped_code_markdown(session: Session, step: Step) -> str:
    if step.execution == "timeout":
        limit = session.config.get("code_timeout")
        seconds = f"{float(limit):g}" if isinstance(limit, (int, float)) else f"{step.duration:.0f}"
        why = f"timed out after {seconds} s in the original run and was interrupted"
    else:
        why = "crashed its kernel in the original run"
    text = "".join(
        _output_text(o) for o in step.outputs if o.get("ename") != "KeyboardInterrupt"
    ).strip("\n")
    parts = [f"**Not re-run:** this code {why}, so it is shown here but not run again.",
             _fenced(step.code, "python")]
    if text:
        parts += ["Its output before it was stopped:", _fenced(text, "text")]
    return "\n\n".join(parts)


def _vote_markdown(session: Session) -> str:
    vote = session.vote
    lines = ["### Vote", ""]
    if vote.tally:
        lines += ["| answer | votes | branches |", "|---|---|---|"]
        for item in vote.tally:
            branches = ", ".join(str(i) for i in item.branches)
            lines.append(f"| ${_math(item.answer)}$ | {item.count} | {branches} |")
        notes = [f"agreement {vote.agreement:.0%}"]
        if vote.decided_early:
            notes.append("decided early: the remaining branches were stopped")
        if vote.tie:
            notes.append("a tie, broken by the lowest branch index")
        lines += ["", "; ".join(notes).capitalize() + "."]
    else:
        lines.append("No branch gave an answer.")
    lines.append("")
    if vote.answer is not None:
        lines.append(f"**Answer: ${_math(vote.answer)}$**")
    else:
        lines.append("**No answer.**")
    if session.error:
        lines += ["", f"> {safe_markdown(_one_line(session.error))}"]
    return "\n".join(lines)


def _provenance_markdown(session: Session, chosen: Branch | None, mode: str) -> str:
    cfg = session.config
    engine = session.engine

    def setting(name: str) -> str:
        if name not in cfg:
            return "—"
        value = cfg[name]
        return f"{value:g}" if isinstance(value, float) else _inline(value)

    endpoint = public_endpoint(engine.endpoint)
    rows = [
        ("engine", f"{_inline(engine.kind or '—')} · model `{_inline(engine.model or '—')}`"
                   + (f" · `{_inline(endpoint)}`" if endpoint else "")),
        ("sampling", ", ".join(f"{name} {setting(name)}" for name in ("temperature", "top_p", "min_p", "top_k"))),
        ("budget", f"max tokens {setting('max_tokens')}, rounds {setting('rounds')}, "
                   f"code timeout {setting('code_timeout')} s, branches {len(session.branches)}"),
        ("seeds", f"base {setting('seed')}; per branch "
                  + (", ".join(f"{b.index}: {b.seed}" for b in session.branches) or "—")
                  + " (round r of a branch samples with its seed + 1000·(r−1))"),
        ("shown", f"branch {chosen.index}" if mode == "winner" and chosen is not None else
                  ("every branch" if mode == "all" else "—")),
        ("status", f"{session.status.value}, {session.completion_tokens} completion tokens"),
        ("created", _inline(session.created or "—")),
        ("time taken", f"{session.elapsed:.1f} s"),
        ("exported by", f"jupyter_qwq {__version__}"),
    ]
    lines = ["### Provenance", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| branch | prompt | seed | status | answer | tokens | time |", "|---|---|---|---|---|---|---|"]
    for b in sorted(session.branches, key=lambda b: b.index):
        answer = f"${_math(b.answer)}$" if b.answer is not None else "—"
        lines.append(f"| {b.index} | `{_inline(b.prompt)}` | {b.seed} | {b.status.value} | {answer} | "
                     f"{b.completion_tokens} | {b.elapsed:.1f} s |")
    return "\n".join(lines)


def public_endpoint(url: str) -> str:
    """scheme://host[:port]/path of an endpoint URL: no user, password, query or fragment."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    if not host:
        return "(unparsable URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# ---------------------------------------------------------------------------------------------
# Markdown safety and small helpers
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
# Inline code, display and inline math: left as written (but no tag can start inside them).
_PROTECTED = re.compile(
    r"(`+).+?(?<!`)\1(?!`)|\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^$\n]+?\$", re.S
)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def safe_markdown(text: str) -> str:
    """Model text as markdown that cannot carry raw HTML, with its math and code left as written.

    Fenced code blocks are kept verbatim (markdown shows them as text). Elsewhere `<` becomes
    `&lt;`, except inside math and inline code, where a `<` right before a letter gets a space after
    it (TeX ignores it; HTML then sees no tag). `![` becomes `!\\[`, so no remote image is fetched.
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
    pieces, last = [], 0
    for match in _PROTECTED.finditer(text):
        pieces.append(_escape_plain(text[last : match.start()]))
        pieces.append(_TAG_START.sub("< ", match.group(0)))
        last = match.end()
    pieces.append(_escape_plain(text[last:]))
    return "".join(pieces)


def _escape_plain(text: str) -> str:
    return text.replace("<", "&lt;").replace("![", "!\\[")


def _math(answer: str) -> str:
    """An answer to put between $…$ (inside a table too)."""
    text = str(answer).replace("$", "").replace("\n", " ").replace("|", "\\vert ")
    return _TAG_START.sub("< ", text)


def _inline(value: Any) -> str:
    """A short value to put inside `code` or a table cell."""
    return str(value).replace("`", "'").replace("|", "/").replace("\n", " ").replace("<", "&lt;")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fenced(text: str, info: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _output_text(output: dict[str, Any]) -> str:
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


def _markdown(text: str, role: str, **meta: Any) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["jupyter_qwq"] = {"role": role, **meta}
    return cell


def _clean_output(output: dict[str, Any], model_output: bool) -> NotebookNode | None:
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


def _check_mode(branch: str) -> None:
    if branch not in BRANCH_MODES:
        raise ConfigError(f"--branch must be one of {', '.join(BRANCH_MODES)}, not {branch!r}")


# ---------------------------------------------------------------------------------------------
# Whole notebooks
# ---------------------------------------------------------------------------------------------


def export_notebook(nb: NotebookNode, branch: str = "winner", source_name: str = "") -> NotebookNode:
    """A new notebook where every solve cell is replaced by its exported cells.

    A cell is a solve cell when its outputs hold a Session record, or its source starts with
    `%%solve` (without a record it becomes a short note: it cannot run in a plain kernel). Other
    cells are kept, minus widget views; lines that need jupyter_qwq (`%load_ext jupyter_qwq`,
    `%qwq`, `%config Solve…`) are commented out, and a cell left with nothing else is dropped.
    A kept code cell that raised, or that uses a solve's result (a `--out` name, `_.`,
    `jupyter_qwq`, `last_session`), gets the `raises-exception` tag: a plain kernel lacks them.
    Every exported code cell has execution_count None.
    """
    _check_mode(branch)
    out = nbformat.v4.new_notebook()
    out.metadata = copy.deepcopy(nb.get("metadata", {}))
    out.metadata.pop("widgets", None)
    kernelspec = out.metadata.get("kernelspec") or {}
    if kernelspec.get("language", "python") != "python" or not kernelspec.get("name"):
        out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                      "language": "python"}
    out.metadata["jupyter_qwq"] = {"exported_from": source_name, "branch": branch,
                                   "version": __version__}
    cells: list[NotebookNode] = []
    needs_qwq = _needs_qwq_pattern(nb)
    for cell in nb.get("cells", []):
        session = session_of_cell(cell)
        if session is not None:
            cells += export_session(session, branch)
        elif _is_solve_cell(cell):
            cells.append(_unrecorded_solve(cell))
        else:
            kept = _kept_cell(cell, needs_qwq)
            if kept is not None:
                cells.append(kept)
    out.cells = _unique_ids(cells)
    return out


def _unrecorded_solve(cell: dict[str, Any]) -> NotebookNode:
    source = _source(cell)
    first, _, problem = source.partition("\n")
    return _markdown(
        "## Problem\n\n" + safe_markdown(problem.strip()) +
        f"\n\n*Not solved in the saved notebook (`{_inline(first.strip())}` has no result in its "
        "outputs).*", role="problem")


def _needs_qwq_pattern(nb: NotebookNode) -> re.Pattern[str]:
    """Code that uses a solve's result or jupyter_qwq: `--out` names, `_.`, `jupyter_qwq`."""
    names = set()
    for cell in nb.get("cells", []):
        if _is_solve_cell(cell):
            names.update(re.findall(r"--out[= ]\s*([A-Za-z_]\w*)", _source(cell).split("\n", 1)[0]))
    alternatives = [r"\bjupyter_qwq\b", r"\blast_session\b", r"(?<![\w.])_\.(?=[A-Za-z_])"]
    alternatives += [rf"(?<![\w.]){re.escape(name)}\b" for name in sorted(names)]
    return re.compile("|".join(alternatives))


def _kept_cell(cell: dict[str, Any], needs_qwq: re.Pattern[str] | None = None) -> NotebookNode | None:
    cell = copy.deepcopy(NotebookNode(cell))
    cell.get("metadata", {}).pop("widgets", None)
    if cell.get("cell_type") != "code":
        return cell
    source = _source(cell)
    raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
    if raised or (needs_qwq is not None and needs_qwq.search(_QWQ_LINE.sub("", source))):
        # It raised before, or it uses a solve's result or jupyter_qwq, which a plain kernel
        # does not have: keep it with its outputs, and let "Run All" go on past it.
        tags = list(cell.metadata.get("tags", []))
        if RERUN_TAG not in tags:
            cell.metadata["tags"] = [*tags, RERUN_TAG]
    if _QWQ_LINE.search(source):
        lines = source.split("\n")
        commented = [f"# {line}  # jupyter_qwq, not needed here" if _QWQ_LINE.match(line) else line
                     for line in lines]
        if all(not line.strip() or _QWQ_LINE.match(line) or line.lstrip().startswith("#")
               for line in lines):
            return None  # only jupyter_qwq set-up: nothing left to run
        cell["source"] = "\n".join(commented)
    cell["outputs"] = [o for o in (_clean_output(o, model_output=False) for o in cell.get("outputs", [])) if o]
    for output in cell["outputs"]:
        if output.get("output_type") == "execute_result":
            output["execution_count"] = cell.get("execution_count")
    return cell


def _unique_ids(cells: Iterable[NotebookNode]) -> list[NotebookNode]:
    seen: set[str] = set()
    result = []
    for cell in cells:
        cell_id = cell.get("id")
        if not cell_id or cell_id in seen or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(cell_id)):
            cell_id = uuid.uuid4().hex[:8]
            while cell_id in seen:
                cell_id = uuid.uuid4().hex[:8]
            cell["id"] = cell_id
        seen.add(cell_id)
        result.append(cell)
    return result


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def default_output(path: Path, to: str) -> Path:
    return path.with_name(f"{path.stem}.solved{FORMATS[to]}")


def export_file(path: str | os.PathLike[str], to: str = "ipynb", out: str | os.PathLike[str] | None = None,
                branch: str = "winner") -> Path:
    """Export the saved notebook at `path`; returns the file written.

    `out` defaults to `<stem>.solved.<ext>` next to the input (a directory gets that name inside
    it). Markdown also writes its images into `<out stem>_files/` beside it. Raises ConfigError
    (a one-line message) for a bad format or branch mode, a missing or unreadable notebook, a
    notebook with no solve results, or an `out` that would overwrite the input.
    """
    if to not in FORMATS:
        raise ConfigError(f"--to must be one of {', '.join(FORMATS)}, not {to!r}")
    _check_mode(branch)
    source = Path(path).expanduser()
    if not source.is_file():
        raise ConfigError(f"no such notebook: {source}")
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as error:  # JSON, encoding or schema problems: all mean "not a notebook"
        raise ConfigError(f"cannot read {source} as a notebook: {_one_line(str(error))[:200]}") from None
    if not find_sessions(nb):
        raise ConfigError(
            f"{source} holds no %%solve results: run its %%solve cells, save the notebook, "
            "then export it"
        )
    target = Path(out).expanduser() if out is not None else default_output(source, to)
    if target.is_dir():
        target = target / default_output(source, to).name
    if target.resolve() == source.resolve():
        raise ConfigError(f"the export would overwrite its input {source}; choose another -o")
    exported = export_notebook(nb, branch, source_name=source.name)
    nbformat.validate(exported)
    target.parent.mkdir(parents=True, exist_ok=True)
    if to == "ipynb":
        nbformat.write(exported, target)
    elif to == "html":
        target.write_text(to_html(exported, target.stem), encoding="utf-8")
    else:
        text, files = to_markdown(exported, target.stem)
        for name, data in files.items():
            file = target.parent / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        target.write_text(text, encoding="utf-8")
    return target


def to_html(nb: NotebookNode, title: str = "") -> str:
    """Standalone HTML (nbconvert's lab template).

    Not `sanitize_html=True`: nbconvert's sanitizer escapes <p>, <th>, <h3>… and mangles every
    markdown cell. The model's text and outputs are made safe before (safe_markdown, SAFE_MIMES);
    the user's own cells are kept as the user wrote them.
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def to_markdown(nb: NotebookNode, stem: str = "notebook") -> tuple[str, dict[str, bytes]]:
    """Markdown, and its image files by path relative to it (in `<stem>_files/`)."""
    from nbconvert import MarkdownExporter

    exporter = MarkdownExporter()
    resources = {"unique_key": stem, "output_files_dir": f"{stem}_files", "metadata": {"name": stem}}
    body, resources = exporter.from_notebook_node(nb, resources=resources)
    return body, dict(resources.get("outputs") or {})


# ---------------------------------------------------------------------------------------------
# The command: `jupyter-qwq export` and `%qwq export`
# ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print and exit
        from .config import FlagError

        raise FlagError(f"{message}\n{self.format_usage().strip()}")


def export_parser(prog: str = "jupyter-qwq export") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Export a solved notebook as a worked solution.")
    parser.add_argument("notebook", nargs="?",
                        help="the saved .ipynb (default in a notebook: the notebook itself, "
                             "from JPY_SESSION_NAME)")
    parser.add_argument("--to", choices=tuple(FORMATS), default="ipynb", help="output format")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="file to write (default: <stem>.solved.<ext> next to the notebook)")
    parser.add_argument("--branch", choices=BRANCH_MODES, default="winner",
                        help="winner: the chosen branch of each solve; all: every branch")
    return parser


def export_command(argv: list[str], prog: str = "jupyter-qwq export") -> Path:
    """Parse `argv` (the words after `export`) and export; returns the path written.

    Raises FlagError (a ConfigError) for bad flags and ConfigError for the file problems of
    `export_file`; `-h` prints the help and raises SystemExit(0) as argparse does.
    """
    args = export_parser(prog).parse_args(argv)
    notebook = args.notebook or os.environ.get("JPY_SESSION_NAME", "")
    if not notebook or not notebook.endswith(".ipynb"):
        raise ConfigError(f"{prog}: give the notebook to export, e.g. {prog} solved.ipynb --to html")
    return export_file(notebook, to=args.to, out=args.output, branch=args.branch)
