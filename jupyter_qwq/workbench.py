"""What `%load_ext jupyter_qwq` keeps for the life of an IPython kernel.

The solve settings (a `Solve` configurable registered with the shell, so `%config` and
ipython_config.py reach it), the background loop, the warm pool of subkernels, and the managed
engine server. All of it is stopped when the kernel shuts down or restarts, or the extension is
unloaded.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import sys
from typing import Any

from IPython.display import display

from .background import Job, LoopThread
from .config import Solve, make_config
from .engines import runtime
from .exceptions import QwqError
from .kernels import KernelPool
from .session import Session
from .solver import check_problem
from .widgets import LiveView

_last_session: Session | None = None


def last_session() -> Session | None:
    """The record of the latest solve in this kernel, finished or not (also after an interrupt)."""
    return _last_session


class Workbench:
    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.settings = Solve(parent=shell)
        shell.configurables.append(self.settings)
        # What ipython_config.py set, to tell it apart from later %config changes.
        self.from_files = dict(shell.config.get("Solve", {}))
        self._loop: LoopThread | None = None
        self._pool: KernelPool | None = None
        self.jobs: list[Job] = []
        atexit.register(self.close)

    @property
    def loop(self) -> LoopThread:
        if self._loop is None or not self._loop.alive:
            self._loop = LoopThread()
        return self._loop

    def config_for(self, overrides: dict[str, Any]) -> Solve:
        return make_config(self.settings, **overrides)

    # -- solving ------------------------------------------------------------------------------

    def solve(self, problem: str, overrides: dict[str, Any], background: bool, out: str | None,
              side_by_side: bool = False) -> Any:
        config = self.config_for(overrides)
        problem = check_problem(problem)
        held: dict[str, Session] = {}
        view = LiveView(on_stop=(lambda: job.cancel()) if background else None, side_by_side=side_by_side)
        listeners = [view, lambda event: held.__setitem__("session", event.session)]
        display(view.widget)
        if background:
            slot = display({"text/plain": "solving in the background…"}, raw=True, display_id=True)
            context = contextvars.copy_context()
            job = self.loop.submit(self._solve(problem, config, listeners))
            self.jobs.append(job)
            job.add_done_callback(lambda done: context.run(self._finish_background, done, view, held, slot, out))
            return BackgroundSolve(job, held, view)
        try:
            session = self.loop.run(self._solve(problem, config, listeners))
        except KeyboardInterrupt:
            self._keep(held.get("session"), out)
            if "session" in held:
                view.finish(held["session"], "interrupted: every stream and subkernel was stopped")
                display(held["session"])
            raise
        except QwqError as error:
            self._keep(held.get("session"), out)
            if "session" in held:
                view.finish(held["session"], str(error))
                display(held["session"])
            print(f"%%solve: error: {error}", file=sys.stderr)
            return None
        view.finish(session)
        self._keep(session, out)
        return session

    async def _solve(self, problem: str, config: Solve, listeners: list[Any]) -> Session:
        from .api import async_solve

        if self._pool is None:
            self._pool = KernelPool()
        engine = await runtime.open_engine(config)
        try:
            session = await async_solve(problem, config, listeners=listeners, opened_engine=engine,
                                        kernels=self._pool)
        finally:
            await engine.client.aclose()
        # Fresh kernels for the next cell start now, while the user reads this one.
        await self._pool.fill(min(config.branches, self.settings.warm_kernels))
        return session

    def _finish_background(self, job: Job, view: LiveView, held: dict[str, Session], slot: Any,
                           out: str | None) -> None:
        session = held.get("session")
        try:
            job.result(0)
            note = ""
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            note = "stopped"
        except BaseException as error:  # failed: keep what was done
            note = f"error: {error}"
        if session is None:
            view.message.value = note
            return
        view.finish(session, note)
        self._keep(session, out)
        slot.update(session)

    def _keep(self, session: Session | None, out: str | None) -> None:
        global _last_session
        if session is None:
            return
        _last_session = session
        if out:
            self.shell.user_ns[out] = session

    # -- the server -----------------------------------------------------------------------------

    def start_server(self) -> Any:
        async def start() -> Any:
            engine = await runtime.open_engine(self.settings)
            await engine.client.aclose()
            return engine

        return self.loop.run(start())

    # -- the end --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop solves, subkernels, servers and the loop. Idempotent."""
        for job in self.jobs:
            job.cancel()
        if self._loop is not None and self._loop.alive:
            pool, self._pool = self._pool, None
            if pool is not None:
                try:
                    self._loop.run(pool.shutdown(), cancel_grace=10)
                except Exception:
                    pass
            self._loop.stop()
        runtime.stop_servers()
        try:
            atexit.unregister(self.close)
        except Exception:
            pass


class BackgroundSolve:
    """A solve running in the background: `.session` (live), `.done()`, `.stop()`, `.result()`."""

    def __init__(self, job: Job, held: dict[str, Session], view: LiveView) -> None:
        self._job = job
        self._held = held
        self.view = view

    @property
    def session(self) -> Session | None:
        return self._held.get("session")

    def done(self) -> bool:
        return self._job.done()

    def stop(self) -> None:
        self._job.cancel()

    def result(self, timeout: float | None = None) -> Session | None:
        """Wait for the end; the record, also when it was stopped or failed."""
        self._job.wait(timeout)
        return self.session

    def __repr__(self) -> str:
        return "<background solve: .session (live record), .done(), .stop(), .result(timeout)>"
