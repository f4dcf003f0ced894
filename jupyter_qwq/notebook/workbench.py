"""What `%load_ext jupyter_qwq` keeps for the life of an IPython kernel.

The solve settings (a `Solve` configurable registered with the shell, so `%config` and
ipython_config.py reach it), the background loop, and a `Solving` held open on it: the engine
(a managed server stays up between cells) and the warm pool of subkernels. All of it is stopped when the kernel shuts down or restarts, or the extension is
unloaded.
"""

from __future__ import annotations

import atexit
import contextvars
from typing import Any

from IPython.display import clear_output, display

from ..config import Solve, make_config
from ..engines import runtime
from ..exceptions import QwqError
from ..kernels import KernelPool
from ..session import BranchStatus, Session
from ..solver import check_problem
from ..solving import Solving
from ..views.facts import count
from ..views.widgets import LiveView
from .background import Job, LoopThread

_last_session: Session | None = None


def _retire(view: LiveView) -> None:
    """Close a blocking cell's live view, and clear its output when the next one (the record,
    or the error line) arrives."""
    clear_output(wait=True)
    view.close()


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
        self._solving: Solving | None = None  # one engine and kernel pool for every cell
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
        """Solve with the live view; its result is the record (or a handle, in the background).

        The live view lives only while the solve runs: then it is closed and its output gives
        way to the record (the explorer, or static HTML), so a saved notebook holds no widget
        that a reload could not find. An error before the record exists is raised (the magic
        prints it); one after is the record's, shown once in its header.
        """
        config = self.config_for(overrides)
        problem = check_problem(problem)
        view = LiveView(on_stop=(lambda: job.cancel()) if background else None, side_by_side=side_by_side)
        shown = display(view.widget, display_id=True)
        try:  # the engine opens (or starts) here; the record exists from then on
            session = self.loop.run(self.solving.new_session(problem, config))
        except BaseException:
            _retire(view)
            raise
        run = self.solving.run(session, config, [view])
        if background:
            context = contextvars.copy_context()
            job = self.loop.submit(run)
            self.jobs.append(job)
            job.add_done_callback(lambda _done: context.run(self._finish_background, view, session, shown, out))
            return BackgroundSolve(job, session, view)
        interrupted = False
        try:
            self.loop.run(run)
        except KeyboardInterrupt:
            interrupted = True
        except QwqError:
            pass  # the record holds the error, and its view shows it, once
        finally:
            _retire(view)
        if interrupted:
            stopped = sum(b.status is BranchStatus.STOPPED for b in session.branches)
            kept = "`_`" + (f" and `{out}`" if out else "")
            print(f"stopped: {count(stopped, 'branch')} cancelled, partial record in {kept}")
        self._keep(session, out)
        return session

    @property
    def kernels(self) -> KernelPool | None:
        """The pool of subkernels the cells share (warm ones wait there), if a solve ran."""
        return self._solving.kernels if self._solving is not None else None

    @property
    def solving(self) -> Solving:
        """The Solving this kernel holds open: one engine, one pool of warm subkernels."""
        if self._solving is None:
            self._solving = Solving(self.settings, warm_kernels=self.settings.warm_kernels)
            self.loop.run(self._solving.__aenter__())
        return self._solving

    def _finish_background(self, view: LiveView, session: Session, shown: Any, out: str | None) -> None:
        """The live view's output becomes the record, whether the solve ended, stopped or failed
        (the record says which, and keeps what was done)."""
        self._keep(session, out)
        shown.update(session)
        view.close()

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
            solving, self._solving = self._solving, None
            if solving is not None:
                try:
                    self._loop.run(solving.aclose(), cancel_grace=10)
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

    def __init__(self, job: Job, session: Session, view: LiveView) -> None:
        self._job = job
        self.session = session  # the record, filled live
        self.view = view

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
