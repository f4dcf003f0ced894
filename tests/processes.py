"""What runs on this machine, for the tests that check nothing is left behind: the package's own
process owner reads /proc (a zombie counts as gone unless asked for), plus a polling helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from jupyter_qwq._processes import alive, group_members, running

__all__ = ["alive", "group_members", "running", "settled", "wait_until"]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


async def settled(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait, without blocking the event loop, until `condition()` holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
