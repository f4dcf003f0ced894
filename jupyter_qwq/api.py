"""The Python entry points: `solve` (blocking) and `async_solve` (for a running event loop)."""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import run_sync

from .config import Solve, make_config
from .engines.runtime import Engine, Recovery, open_engine
from .events import Listener
from .kernels import KernelPool
from .session import Session
from .solver import Solver, check_problem


async def async_solve(
    problem: str,
    config: Solve | None = None,
    *,
    listeners: tuple[Listener, ...] | list[Listener] = (),
    opened_engine: Engine | None = None,
    session: Session | None = None,
    kernels: KernelPool | None = None,
    **options: Any,
) -> Session:
    """Solve `problem` with reasoning branches and return the Session record.

    `options` are Solve traits (branches=8, rounds=4, temperature=0.7, ...) over `config`.
    `opened_engine` reuses an engine the caller opened (and keeps open) instead of opening one;
    `kernels` a pool the caller owns (kept warm across solves) instead of a pool for this solve.
    A managed server is started on first use and reused by later solves; subkernels are
    started for this solve and always shut down before it returns.
    """
    config = make_config(config, **options)
    check_problem(problem)
    owns_engine = opened_engine is None
    engine = opened_engine or await open_engine(config)
    try:
        if kernels is not None:
            return await _run(problem, config, engine, kernels, listeners, session)
        async with KernelPool() as own_kernels:
            return await _run(problem, config, engine, own_kernels, listeners, session)
    finally:
        if owns_engine:
            await engine.client.aclose()


async def _run(problem: str, config: Solve, engine: Engine, kernels: KernelPool,
               listeners: Any, session: Session | None) -> Session:
    recovery = None
    if engine.server is not None:
        recovery = Recovery(engine.server, engine.client, config.server_start_timeout)
    solver = Solver(config, engine.client, engine.info, kernels, listeners, recovery=recovery)
    return await solver.run(problem, session or solver.new_session(problem))


def solve(problem: str, config: Solve | None = None, **options: Any) -> Session:
    """Blocking `async_solve`; safe to call inside Jupyter, where a loop is already running."""
    return run_sync(async_solve)(problem, config, **options)
