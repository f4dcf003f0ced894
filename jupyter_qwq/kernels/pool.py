"""A pool of fresh subkernels: one per branch, started ahead while the model writes, all stopped."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from typing import Any

from ..exceptions import KernelError
from .subkernel import Subkernel

__all__ = ["KernelPool"]

log = logging.getLogger(__name__)


class KernelPool:
    """Starts fresh subkernels, one per branch, and stops every one of them.

    Kernels are never reused across branches: state must not leak from one to another.
    `settings` are Subkernel's keyword arguments (kernel_name, sandbox, limits, shared_dirs,
    replay, ...), given to every kernel the pool starts; with `gateway` (a URL) the kernels run
    on that Jupyter Kernel or Enterprise Gateway, which has `gateway_timeout` seconds to answer
    each liveness check, interrupt and stop (GatewaySubkernel).
    `limit` caps the kernels alive at once (0: no cap): an acquire beyond it waits until a kernel
    is released.
    """

    def __init__(self, limit: int = 0, gateway: str = "", gateway_timeout: float = 10.0,
                 **settings: Any) -> None:
        inspect.signature(Subkernel).bind(**settings)  # a misspelt setting fails here, not later
        if limit < 0:
            raise ValueError(f"a kernel pool's limit must be 0 (no cap) or more, not {limit}")
        self.settings = settings
        self.gateway = gateway
        self.gateway_timeout = gateway_timeout
        self.limit = limit
        self._released = asyncio.Condition()  # notified whenever a kernel stops
        self._kernels: dict[Subkernel, None] = {}  # an ordered set of kernels not yet stopped
        self._warm: deque[tuple[Subkernel, asyncio.Task[None]]] = deque()  # prestarted
        self._starting: set[asyncio.Task[None]] = set()  # every start still in progress
        self._stopping: set[asyncio.Future[None]] = set()  # released kernels still shutting down
        self._closed = False

    async def __aenter__(self) -> KernelPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @property
    def kernels(self) -> tuple[Subkernel, ...]:
        """Every kernel this pool started (or is starting) and has not stopped yet."""
        return tuple(self._kernels)

    async def acquire(self) -> Subkernel:
        """A ready kernel with fresh state: a prestarted one if any, else a new one."""
        self._check_open()
        await self._drop_stale()
        if not self._warm:
            async with self._released:
                await self._released.wait_for(lambda: self._closed or self._has_room())
            self._check_open()
        kernel, starting = self._warm.popleft() if self._warm else self._start_in_background()
        await starting
        return kernel

    async def prestart(self, n: int) -> None:
        """Start `n` kernels concurrently in the background (fewer if the limit says so);
        returns at once."""
        self._check_open()
        if self.limit:
            n = min(n, self.limit - len(self._kernels))
        self._warm.extend(self._start_in_background() for _ in range(n))

    @property
    def warm(self) -> int:
        """How many prestarted kernels wait to be acquired."""
        return len(self._warm)

    async def fill(self, n: int) -> None:
        """Prestart kernels until `n` are warm; returns at once."""
        await self._drop_stale()
        await self.prestart(max(0, n - len(self._warm)))

    async def ready(self) -> None:
        """Wait until every prestarted kernel has started (KernelError if one cannot)."""
        await asyncio.gather(*(starting for _, starting in self._warm))

    async def release(self, kernel: Subkernel, wait: bool = True) -> None:
        """Shut a kernel down for good (the pool's shutdown waits for it, even if this is
        cancelled). `wait=False` returns at once, the shutdown going on in the background: a
        branch that has its answer need not wait for its kernel to be gone."""
        self._kernels.pop(kernel, None)
        stopping = asyncio.ensure_future(self._stop(kernel))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        if wait:
            await asyncio.shield(stopping)

    async def _stop(self, kernel: Subkernel) -> None:
        """Shut `kernel` down; a failure is said here, once, whoever waits (or not) for it."""
        try:
            await kernel.shutdown()
        except Exception as error:
            log.warning("A subkernel failed to shut down cleanly: %s", error)
        finally:
            await self._notify_released()

    async def shutdown(self) -> None:
        """Stop every kernel this pool started, including those still starting. Idempotent."""
        self._closed = True
        self._warm.clear()
        starting = list(self._starting)
        for task in starting:
            task.cancel()  # a cancelled start stops whatever it had launched
        await asyncio.gather(*starting, return_exceptions=True)
        kernels = list(self._kernels)
        self._kernels.clear()
        await asyncio.gather(*(self._stop(k) for k in kernels), *self._stopping, return_exceptions=True)
        await self._notify_released()  # a waiting acquire learns the pool is closed

    async def _drop_stale(self) -> None:
        """Warm kernels that failed to start or died waiting (say, their gateway went) make way
        for fresh ones."""
        stale = [(kernel, starting) for kernel, starting in self._warm if starting.done()
                 and (starting.cancelled() or starting.exception() or not kernel.alive)]
        for entry in stale:  # all of them before the first await: another acquire may be here too
            self._warm.remove(entry)
        for kernel, _ in stale:
            await self.release(kernel)

    def _new_kernel(self) -> Subkernel:
        if self.gateway:
            from .gateway import GatewaySubkernel

            return GatewaySubkernel(self.gateway, gateway_timeout=self.gateway_timeout, **self.settings)
        return Subkernel(**self.settings)

    def _start_in_background(self) -> tuple[Subkernel, asyncio.Task[None]]:
        kernel = self._new_kernel()
        self._kernels[kernel] = None
        task = asyncio.create_task(self._start(kernel))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        task.add_done_callback(_seen)
        return kernel, task

    async def _start(self, kernel: Subkernel) -> None:
        try:
            await kernel.start()
        except BaseException:
            self._kernels.pop(kernel, None)
            await self._notify_released()
            raise

    def _has_room(self) -> bool:
        return not self.limit or len(self._kernels) < self.limit

    async def _notify_released(self) -> None:
        async with self._released:
            self._released.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise KernelError("This kernel pool was shut down; create a new KernelPool.")


def _seen(task: asyncio.Task[None]) -> None:
    """A warm kernel that failed to start, and that no branch needed, is no error (and no
    "Task exception was never retrieved" on stderr); an acquire still gets its error."""
    if not task.cancelled():
        task.exception()
