"""An event loop on its own thread, where every solve of a notebook runs.

The IPython kernel's loop is busy while a cell runs, and async resources (subkernel managers,
HTTP clients) belong to the loop that made them. So the workbench keeps one loop alive on a
daemon thread for the kernel's lifetime: solves, the warm subkernel pool and engine clients all
live there, whether the cell blocks or returns at once. No `asyncio.run` or `nest_asyncio` ever
touches the kernel's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "jupyter-qwq-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._loop.is_closed()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Job[T]:
        """Start `coro` on the loop; the Job can wait for it or cancel it from any thread."""
        return Job(self._loop, coro)

    def run(self, coro: Coroutine[Any, Any, T], cancel_grace: float = 60.0) -> T:
        """Run `coro` to its end and return its result, from a thread that is not the loop's.

        A KeyboardInterrupt (Jupyter's interrupt) cancels the coroutine, waits for its cleanup
        (streams closed, subkernels interrupted), then propagates.
        """
        job = self.submit(coro)
        try:
            return job.result()
        except KeyboardInterrupt:
            job.cancel()
            job.wait(cancel_grace)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what still runs on the loop, let it clean up, and end the thread."""
        if not self.alive:
            return

        async def cancel_everything() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_everything(), self._loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()


class Job:
    """A coroutine running on a LoopThread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> None:
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._ready = threading.Event()
        self._future = asyncio.run_coroutine_threadsafe(self._hold(coro), loop)

    async def _hold(self, coro: Coroutine[Any, Any, Any]) -> Any:
        self._task = asyncio.current_task()
        self._ready.set()
        return await coro

    def result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the coroutine has ended (cleanup included); True if it has."""
        try:
            concurrent.futures.wait([self._future], timeout)
        except KeyboardInterrupt:
            return False
        return self._future.done()

    def cancel(self) -> None:
        """Ask the coroutine to stop; it runs its cleanup before it ends."""
        self._ready.wait(5)
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)

    def add_done_callback(self, callback: Any) -> None:
        self._future.add_done_callback(lambda _future: callback(self))
