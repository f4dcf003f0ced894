"""The Python entry points: `solve` (blocking) and `async_solve` (for a running event loop), the
one-shot form of `Solving`."""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import run_sync

from .config import Solve
from .events import Listener
from .session import Session
from .solving import Solving


async def async_solve(
    problem: str,
    config: Solve | None = None,
    *,
    listeners: tuple[Listener, ...] | list[Listener] = (),
    **options: Any,
) -> Session:
    """Solve `problem` with reasoning branches and return the Session record.

    `options` are Solve traits (branches=8, rounds=4, temperature=0.7, ...) over `config`. A
    managed server is started on first use and reused by later solves; subkernels are started
    for this solve and always shut down before it returns. To solve several problems on one
    engine and one kernel pool, hold a `Solving` open instead.
    """
    async with Solving(config, **options) as solving:
        return await solving.solve(problem, listeners=listeners)


def solve(problem: str, config: Solve | None = None, **options: Any) -> Session:
    """Blocking `async_solve`; safe to call inside Jupyter, where a loop is already running."""
    return run_sync(async_solve)(problem, config, **options)
