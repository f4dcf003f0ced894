"""Writing the export as .ipynb, .html or .md, and the `jupyter-qwq export` / `%qwq export` flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ...exceptions import ConfigError
from .cells import find_sessions
from .markdown import BRANCH_MODES, FORMATS, check_mode, one_line
from .mathml import typeset_markdown
from .notebook import export_notebook


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
    check_mode(branch)
    source = Path(path).expanduser()
    if not source.is_file():
        raise ConfigError(f"no such notebook: {source}")
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as error:  # JSON, encoding or schema problems: all mean "not a notebook"
        raise ConfigError(f"cannot read {source} as a notebook: {one_line(str(error))[:200]}") from None
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
    the user's own cells are kept as the user wrote them. Math in markdown is typeset as MathML
    (mathml.py), so it shows offline; what does not convert is left to MathJax, which needs the
    network.
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    body, _ = exporter.from_notebook_node(typeset_markdown(nb), resources={"metadata": {"name": title}})
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
        from ...flags import FlagError

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
