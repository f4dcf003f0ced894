"""A solved notebook as a clean one: every `%%solve` cell replaced by its worked solution."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..._version import __version__
from ...redaction import hide_key_settings
from .cells import is_solve_cell, cell_source, export_session, session_of_cell
from .markdown import RERUN_TAG, QWQ_LINE, check_mode, clean_output, inline_code, markdown_cell, safe_markdown


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
    check_mode(branch)
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
        elif is_solve_cell(cell):
            cells.append(_unrecorded_solve(cell))
        else:
            kept = _kept_cell(cell, needs_qwq)
            if kept is not None:
                cells.append(kept)
    out.cells = _unique_ids(cells)
    return out


def _unrecorded_solve(cell: dict[str, Any]) -> NotebookNode:
    first, _, problem = hide_key_settings(cell_source(cell)).partition("\n")
    return markdown_cell(
        "## Problem\n\n" + safe_markdown(problem.strip()) +
        f"\n\n*Not solved in the saved notebook (`{inline_code(first.strip())}` has no result in its "
        "outputs).*", role="problem")


def _needs_qwq_pattern(nb: NotebookNode) -> re.Pattern[str]:
    """Code that uses a solve's result or jupyter_qwq: `--out` names, `_.`, `jupyter_qwq`."""
    names = set()
    for cell in nb.get("cells", []):
        if is_solve_cell(cell):
            names.update(re.findall(r"--out[= ]\s*([A-Za-z_]\w*)", cell_source(cell).split("\n", 1)[0]))
    alternatives = [r"\bjupyter_qwq\b", r"\blast_session\b", r"(?<![\w.])_\.(?=[A-Za-z_])"]
    alternatives += [rf"(?<![\w.]){re.escape(name)}\b" for name in sorted(names)]
    return re.compile("|".join(alternatives))


def _kept_cell(cell: dict[str, Any], needs_qwq: re.Pattern[str] | None = None) -> NotebookNode | None:
    cell = copy.deepcopy(NotebookNode(cell))
    cell.get("metadata", {}).pop("widgets", None)
    if cell.get("cell_type") != "code":
        return cell
    source = hide_key_settings(cell_source(cell))  # the notebook keeps a key typed in it; its export does not
    cell["source"] = source
    raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
    if raised or (needs_qwq is not None and needs_qwq.search(QWQ_LINE.sub("", source))):
        # It raised before, or it uses a solve's result or jupyter_qwq, which a plain kernel
        # does not have: keep it with its outputs, and let "Run All" go on past it.
        tags = list(cell.metadata.get("tags", []))
        if RERUN_TAG not in tags:
            cell.metadata["tags"] = [*tags, RERUN_TAG]
    if QWQ_LINE.search(source):
        lines = source.split("\n")
        commented = [f"# {line}  # jupyter_qwq, not needed here" if QWQ_LINE.match(line) else line
                     for line in lines]
        if all(not line.strip() or QWQ_LINE.match(line) or line.lstrip().startswith("#")
               for line in lines):
            return None  # only jupyter_qwq set-up: nothing left to run
        cell["source"] = "\n".join(commented)
    cell["outputs"] = [o for o in (clean_output(o, model_output=False) for o in cell.get("outputs", [])) if o]
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

