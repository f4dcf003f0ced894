"""One Session record as notebook cells: problem, the chosen branch's reasoning and code, the
vote, the provenance."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nbformat
from nbformat import NotebookNode

from ..._version import __version__
from ...codeblocks import first_complete_block
from ...exceptions import ConfigError
from ...session import MIME_TYPE, Branch, Session, Step
from ..facts import branch_error, dropped_text, is_fallback, score_text, stop_text, vote_notes, weight_text
from .markdown import RERUN_TAG, PY_OPEN, check_mode, clean_output, fenced, inline_code, markdown_cell, math_inline, one_line, output_text, safe_markdown


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


def is_solve_cell(cell: dict[str, Any]) -> bool:
    return cell.get("cell_type") == "code" and cell_source(cell).lstrip().startswith("%%solve")


def cell_source(cell: dict[str, Any]) -> str:
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
    check_mode(branch)
    chosen = choose_branch(session)
    cells = [markdown_cell(f"## Problem\n\n{safe_markdown(session.problem)}", role="problem")]
    if branch == "winner":
        shown = [chosen] if chosen is not None else []
    else:
        shown = sorted(session.branches, key=lambda b: b.index)
    if not shown:
        cells.append(markdown_cell("*This solve has no branches.*", role="branch"))
    for b in shown:
        cells += _branch_cells(session, b, chosen=b is chosen, mode=branch)
    cells.append(markdown_cell(_vote_markdown(session), role="vote"))
    cells.append(markdown_cell(_provenance_markdown(session, chosen, branch), role="provenance"))
    return cells


def _branch_cells(session: Session, branch: Branch, chosen: bool, mode: str) -> list[NotebookNode]:
    title = "Solution" if mode == "winner" else f"Branch {branch.index}"
    facts = [f"branch {branch.index}" if mode == "winner" else "", f"prompt `{inline_code(branch.prompt)}`",
             _status_text(branch), *(safe_markdown(fact) for fact in (score_text(branch, session), stop_text(branch, session),
                                                                    dropped_text(branch, session)))]
    if mode == "all" and chosen:
        facts.append("**shown as the solution**")
    head = f"### {title}\n\n" + " · ".join(f for f in facts if f)
    if error := branch_error(branch, session):
        head += f"\n\n> Error: {safe_markdown(one_line(error))}"
    cells = [markdown_cell(head, role="branch", branch=branch.index)]
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
                cells.append(markdown_cell(text, role="reasoning", branch=branch.index, step=number))
    return cells


def _status_text(branch: Branch) -> str:
    status = branch.status.value.replace("_", " ")
    if branch.answer is None:
        return status
    source = " (fallback: no \\boxed answer)" if is_fallback(branch) else ""
    outside = f" (does not vote: {branch.answer_outside})" if branch.answer_outside else ""
    return f"{status}: ${math_inline(branch.answer)}${source}{outside}"


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
    for opening in reversed(list(PY_OPEN.finditer(text))):
        block = first_complete_block(text, opening.start())
        if block is not None and block.code == code.strip("\n") and not text[block.end:].strip():
            return text[: opening.start()]
    return text


def _code_step(session: Session, branch: Branch, step: Step, number: int, tainted: bool) -> NotebookNode:
    meta = {"branch": branch.index, "step": number, "execution": step.execution}
    if step.execution in ("timeout", "crashed"):
        return markdown_cell(_skipped_code_markdown(session, step), role="code-not-rerun", **meta)
    outputs = [o for o in (clean_output(o, model_output=True) for o in step.outputs) if o]
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
        output_text(o) for o in step.outputs if o.get("ename") != "KeyboardInterrupt"
    ).strip("\n")
    parts = [f"**Not re-run:** this code {why}, so it is shown here but not run again.",
             fenced(step.code, "python")]
    if text:
        parts += ["Its output before it was stopped:", fenced(text, "text")]
    return "\n\n".join(parts)


def _vote_markdown(session: Session) -> str:
    vote = session.vote
    lines = ["### Vote", ""]
    if vote.tally:
        weighed = any(weight_text(item, session) for item in vote.tally)
        lines += ["| answer | votes | weight | branches |" if weighed else "| answer | votes | branches |",
                  "|---|---|---|---|" if weighed else "|---|---|---|"]
        for item in vote.tally:
            branches = ", ".join(str(i) for i in item.branches)
            weight = f" {weight_text(item, session).removeprefix('weight ')} |" if weighed else ""
            lines.append(f"| ${math_inline(item.answer)}$ | {item.count} |{weight} {branches} |")
        lines += ["", "; ".join(vote_notes(session)).capitalize() + "."]
    else:
        lines.append("No branch gave an answer.")
    lines.append("")
    if vote.answer is not None:
        lines.append(f"**Answer: ${math_inline(vote.answer)}$**")
    else:
        lines.append("**No answer.**")
    if session.error:
        lines += ["", f"> {safe_markdown(one_line(session.error))}"]
    return "\n".join(lines)


def _provenance_markdown(session: Session, chosen: Branch | None, mode: str) -> str:
    cfg = session.config
    engine = session.engine

    def setting(name: str) -> str:
        if name not in cfg:
            return "—"
        value = cfg[name]
        return f"{value:g}" if isinstance(value, float) else inline_code(value)

    endpoint = public_endpoint(engine.endpoint)
    rows = [
        ("engine", f"{inline_code(engine.kind or '—')} · model `{inline_code(engine.model or '—')}`"
                   + (f" · `{inline_code(endpoint)}`" if endpoint else "")),
        ("sampling", ", ".join(f"{name} {setting(name)}" for name in ("temperature", "top_p", "min_p", "top_k"))),
        ("budget", f"max tokens {setting('max_tokens')}, rounds {setting('rounds')}, "
                   f"code timeout {setting('code_timeout')} s, branches {len(session.branches)}"),
        ("seeds", f"base {setting('seed')}; per branch "
                  + (", ".join(f"{b.index}: {b.seed}" for b in session.branches) or "—")
                  + " (round r of a branch samples with its seed + 1000·(r−1))"),
        ("shown", f"branch {chosen.index}" if mode == "winner" and chosen is not None else
                  ("every branch" if mode == "all" else "—")),
        ("status", f"{session.status.value}, {session.completion_tokens} completion tokens"),
        ("created", inline_code(session.created or "—")),
        ("time taken", f"{session.elapsed:.1f} s"),
        ("exported by", f"jupyter_qwq {__version__}"),
    ]
    lines = ["### Provenance", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| branch | prompt | seed | status | answer | tokens | time |", "|---|---|---|---|---|---|---|"]
    for b in sorted(session.branches, key=lambda b: b.index):
        answer = f"${math_inline(b.answer)}$" if b.answer is not None else "—"
        lines.append(f"| {b.index} | `{inline_code(b.prompt)}` | {b.seed} | {b.status.value} | {answer} | "
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

