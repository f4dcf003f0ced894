"""One way to open a solve: an async context that owns the engine and the subkernel pool.

    async with Solving(config) as solving:
        session = await solving.solve("What is 17 * 23?")
        other = await solving.solve("...", branches=4)     # same engine, same pool

`solve()` / `async_solve()` are its one-shot form; the notebook and `jupyter-qwq eval` each hold
one open. The engine opens at the first solve, once its problem is checked. Each solve checks
its problem and settings once, gets a record at once
(`solving.new_session`), and fills it: the caller holds the record however the solve ends (an
error carries it as `.session` too). A solve whose settings name another engine than the open one
(another model, endpoint, key...) reopens it; a managed server stays up for reuse either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .config import Solve, make_config
from .engines.runtime import Engine, engine_settings, open_engine
from .events import Listener
from .kernels import KernelPool
from .session import Session
from .solver import Solver, check_problem, new_session

__all__ = ["Solving"]


class Solving:
    """An engine and a kernel pool kept open for solves; closed (client, kernels) on exit."""

    def __init__(self, config: Solve | None = None, *, kernels: KernelPool | None = None,
                 warm_kernels: int = 0, **options: Any) -> None:
        """`options` are Solve traits over `config`; `kernels` a pool the caller owns and keeps
        (else one made from the settings' subkernel traits, and shut down here); `warm_kernels`
        kernels are started ahead after each solve, for the next."""
        self.config = make_config(config, **options)
        self.warm_kernels = warm_kernels
        self._own_kernels = kernels is None
        self.kernels = kernels
        self._kernels_key: tuple = ()  # the settings the pool made here was made for
        self.engine: Engine | None = None
        self._engine_key: tuple = ()
        self._engine_lock = asyncio.Lock()  # concurrent solves open one engine

    async def __aenter__(self) -> Solving:
        if self.kernels is None:
            self.kernels, self._kernels_key = _pool_for(self.config), _pool_key(self.config)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        engine, self.engine = self.engine, None
        try:
            if engine is not None:
                await engine.client.aclose()
        finally:
            if self._own_kernels and self.kernels is not None:
                await self.kernels.shutdown()

    def settings(self, **options: Any) -> Solve:
        """This context's settings with `options` over them (checked: ConfigError if bad)."""
        return make_config(self.config, **options)

    async def new_session(self, problem: str, config: Solve | None = None) -> Session:
        """The record of a solve about to start: the problem checked, the settings resolved for
        the engine's model. Opens the engine that `config` names, if another one is open."""
        config = config or self.config
        problem = check_problem(problem)  # before anything starts: a bad problem starts nothing
        await self._open_engine(config)
        assert self.engine is not None
        return new_session(problem, config, self.engine.info)

    async def run(self, session: Session, config: Solve | None = None,
                  listeners: list[Listener] | tuple[Listener, ...] = ()) -> Session:
        """Solve, filling `session`; the same record back (an error carries it as `.session`)."""
        config = config or self.config
        engine = self.engine
        assert engine is not None and self.kernels is not None, "use `async with Solving(...)`"
        await self._match_kernels(config)
        solver = Solver(session, config, engine.client, self.kernels, listeners,
                        engine.recovery(config.server_start_timeout))
        try:
            return await solver.run()
        finally:
            if self.warm_kernels:  # fresh kernels for the next solve start while the user reads
                await self.kernels.fill(min(config.branches, self.warm_kernels))

    async def solve(self, problem: str, *, listeners: list[Listener] | tuple[Listener, ...] = (),
                    **options: Any) -> Session:
        """Solve `problem` with this context's settings and `options` over them."""
        config = self.settings(**options)
        return await self.run(await self.new_session(problem, config), config, listeners)

    async def _match_kernels(self, config: Solve) -> None:
        """A pool made here follows the solve's subkernel settings (a new pool if they changed)."""
        if not self._own_kernels or self.kernels is None:
            return
        if self._kernels_key != _pool_key(config):
            old, self.kernels, self._kernels_key = self.kernels, _pool_for(config), _pool_key(config)
            await old.shutdown()

    async def _open_engine(self, config: Solve) -> None:
        key = engine_settings(config)
        async with self._engine_lock:
            if self.engine is not None and key == self._engine_key:
                return
            if self.engine is not None:
                engine, self.engine = self.engine, None
                await engine.client.aclose()
            self.engine = await open_engine(config)
            self._engine_key = key


def _pool_key(config: Solve) -> tuple:
    """What a pool made for `config` depends on: another solve with the same key shares it."""
    return config.max_kernels, tuple(sorted(config.kernel_settings().items()))


def _pool_for(config: Solve) -> KernelPool:
    return KernelPool(config.max_kernels, **config.kernel_settings())
