"""jupyter_qwq: a notebook workbench for LLM reasoning.

Several reasoning branches per problem, the Python each writes run in its own Jupyter subkernel,
answers grouped by mathematical equivalence and voted.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = [
    "__version__",
    "Session",
    "Solve",
    "Solving",
    "Vote",
    "async_solve",
    "export_file",
    "export_session",
    "extract_answer",
    "solve",
    "vote",
    "QwqError",
    "last_session",
    "load_ipython_extension",
    "unload_ipython_extension",
]

# Imported on first use, so that importing the package (and %load_ext) stays fast.
_LAZY = {
    "Session": ".session",
    "Vote": ".session",
    "Solve": ".config",
    "Solving": ".solving",
    "async_solve": ".api",
    "solve": ".api",
    "export_file": ".views.export",
    "export_session": ".views.export",
    "extract_answer": ".answers",
    "vote": ".answers",
    "QwqError": ".exceptions",
    "last_session": ".notebook.workbench",
}

_workbench = None


def _show_sessions_in_ipython() -> None:
    """In IPython, a Session displays as its bundle (explorer record, static HTML, text).

    Registered with IPython's display formatter, so that the record (jupyter_qwq.session) needs
    to import no view; the views are imported when a Session is first shown.
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return

    def bundle(session: Any) -> dict[str, Any]:
        from .views import mime_bundle

        return mime_bundle(session)

    shell.display_formatter.mimebundle_formatter.for_type_by_name("jupyter_qwq.session", "Session", bundle)


_show_sessions_in_ipython()


def load_ipython_extension(shell: Any) -> None:
    """`%load_ext jupyter_qwq`: registers %%solve and %qwq, and the Solve configurable."""
    global _workbench
    from .notebook.magics import load

    if _workbench is None:
        _workbench = load(shell)


def unload_ipython_extension(shell: Any) -> None:
    """Stops every solve, subkernel and server the extension started."""
    global _workbench
    from .notebook.magics import unload

    if _workbench is not None:
        unload(_workbench)
        _workbench = None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jupyter_qwq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
