"""How long a fresh sandboxed subkernel takes to answer its first block: forked, launched, or warm.

For each way, one kernel is started first and not counted (the fork server starts then, once per
process, and the interpreter's caches fill), then `--kernels` fresh kernels are timed one after
another, from the moment a branch asks for one until the reply to its first `execute_request`
(`x = 1`):

* launched: `Subkernel.start()` launches a new interpreter that enters the sandbox;
* forked: `Subkernel.start()` forks it from the fork server (the default);
* warm: `KernelPool.acquire()` hands over a kernel the pool forked ahead and that is ready, as a
  notebook's pool holds them after its first solve (`Solve.warm_kernels`); it is as fresh as the
  others: no code ran in it.

The ways alternate kernel by kernel, so a background load weighs on all alike; the kernel
process's own CPU time until then (its start included), which a load does not change, is shown
beside.

    python benchmarks/kernel_start.py [--kernels 10] [--no-sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from rich.console import Console
from rich.table import Table

from jupyter_qwq.kernels import KernelPool

WAYS = ("launched", "forked", "warm")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (a load on the machine does not change it)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def first_block(sandbox: bool, way: str) -> tuple[float, float, bool]:
    """Seconds from asking for a kernel to its first block's reply, the kernel's CPU seconds
    until then, and whether it really came from a fork."""
    async with KernelPool(sandbox=sandbox, fork_server=way != "launched") as pool:
        if way == "warm":
            await pool.prestart(1)
            await pool.ready()
        started = time.monotonic()
        kernel = await pool.acquire()
        result = await kernel.execute("x = 1", timeout=30)
        elapsed = time.monotonic() - started
        if result.status != "ok":
            raise RuntimeError(f"the first block failed: {result.feedback()}")
        assert kernel.pid is not None
        return elapsed, cpu_seconds(kernel.pid), kernel.forked


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=10, help="kernels timed per way")
    parser.add_argument("--no-sandbox", action="store_true", help="unconfined kernels")
    args = parser.parse_args()
    sandbox = not args.no_sandbox
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    forked: dict[str, bool] = {}
    for way in WAYS:
        _, _, forked[way] = await first_block(sandbox, way)  # warm-up, not counted
    for _ in range(args.kernels):
        for way in WAYS:
            seconds, used, _ = await first_block(sandbox, way)
            times[way].append(seconds)
            cpu[way].append(used)
    table = Table(title=f"fresh {'sandboxed ' if sandbox else ''}subkernel: asked for to first "
                        f"block's reply, {args.kernels} kernels each "
                        f"(load average {os.getloadavg()[0]:.1f})")
    for column in ("way", "forked", "median (ms)", "min (ms)", "max (ms)", "× launched",
                   "kernel CPU, median (ms)"):
        table.add_column(column, justify="right")
    baseline = statistics.median(times[WAYS[0]])
    for way, seconds in times.items():
        median = statistics.median(seconds)
        table.add_row(way, "yes" if forked[way] else "no", f"{median * 1000:.0f}",
                      f"{min(seconds) * 1000:.0f}", f"{max(seconds) * 1000:.0f}",
                      f"{median / baseline:.2f}", f"{statistics.median(cpu[way]) * 1000:.0f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
