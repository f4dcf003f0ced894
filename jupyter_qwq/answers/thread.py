"""The thread where answers are read and compared while a solve runs.

Math-Verify and SymPy take milliseconds to tens of milliseconds: too long for the event loop,
which streams every branch. asyncio's default executor is the wrong place too: released
subkernels stop there (signals, waits, sandbox sweeps), and a vote queued behind eight of them
waited hundreds of milliseconds with the answer already known. One thread of their own: the work
holds the interpreter lock anyway, so more threads would not run it faster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["in_answer_thread"]

T = TypeVar("T")

_ANSWERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jupyter_qwq-answers")


async def in_answer_thread(work: Callable[..., T], *args: object) -> T:
    """`work(*args)` in the answers' own thread, awaited."""
    return await asyncio.get_running_loop().run_in_executor(_ANSWERS, work, *args)
