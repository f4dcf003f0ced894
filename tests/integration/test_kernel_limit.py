"""`Solve.max_kernels`: many problems at once share one pool, and the pool never exceeds its cap."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_qwq import Solving

from scripted_server import code_then_box

pytestmark = pytest.mark.timeout(240)


async def test_concurrent_solves_wait_for_a_kernel_and_never_exceed_the_cap(scripted):
    server = scripted(code_then_box)
    most = 0

    async def watch(solving: Solving) -> None:
        nonlocal most
        while True:
            most = max(most, len(solving.kernels.kernels))
            await asyncio.sleep(0.02)

    async with Solving(**server.options(branches=2, early_stop=False, max_kernels=1)) as solving:
        watcher = asyncio.create_task(watch(solving))
        try:
            sessions = await asyncio.gather(*(solving.solve(f"What is 6 times 7? ({n})") for n in range(2)))
        finally:
            watcher.cancel()
    # four branches each ran code, one kernel at a time, and every one finished
    assert [b.answer for s in sessions for b in s.branches] == ["42"] * 4
    assert all(b.steps[1].execution == "ok" for s in sessions for b in s.branches)
    assert most == 1


async def test_a_negative_cap_is_refused():
    from jupyter_qwq.exceptions import ConfigError

    with pytest.raises(ConfigError, match="max_kernels must be 0 or more"):
        Solving(max_kernels=-1)
