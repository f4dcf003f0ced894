"""Wall time of a solve against the scripted server, beside the ideal.

Each branch streams a reply with a delay per chunk, runs one code block in its real subkernel, and
streams a final answer. Branches are independent, so the ideal wall time of a solve is the time of
its slowest branch alone (measured in the same run, one branch at a time); the overhead is what
concurrency, subkernel start-up and voting add on top.

    python benchmarks/solve_walltime.py [--branches 8] [--chunks 40] [--delay 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scripted_server import Reply, ScriptedServer, branch_and_round, last_output  # noqa: E402

from jupyter_qwq import async_solve  # noqa: E402
from jupyter_qwq.kernels import KernelPool  # noqa: E402


def make_script(chunks: int, delay: float):
    def script(body):
        branch, round_ = branch_and_round(body)
        if round_ == 1:
            prose = "Let me think about it. " * max(1, chunks // 6)
            return Reply(f"{prose}\n```python\nprint({branch} + 35)\n```", chunk_chars=4, delay=delay)
        return Reply(f"It printed {last_output(body)}. \\boxed{{{last_output(body)}}}", chunk_chars=4, delay=delay)

    return script


async def timed_solve(server: ScriptedServer, branches: int, seed: int = 0) -> float:
    started = time.monotonic()
    await async_solve("Add 35.", engine="endpoint", endpoint=server.base_url, branches=branches,
                      rounds=1, seed=seed, early_stop=False)
    return time.monotonic() - started


async def kernel_startup(count: int) -> float:
    """Starting `count` subkernels at once, alone: the floor under a cold solve's overhead."""
    started = time.monotonic()
    async with KernelPool() as pool:
        await pool.prestart(count)
        for _ in range(count):
            await pool.acquire()
        return time.monotonic() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.01)
    args = parser.parse_args()
    with ScriptedServer(make_script(args.chunks, args.delay)) as server:
        single = [await timed_solve(server, 1, seed=i) for i in range(3)]
        ideal = min(single)
        whole = [await timed_solve(server, args.branches) for _ in range(3)]
    startup = await kernel_startup(args.branches)
    table = Table(title=f"solve wall time, {args.branches} branches, scripted server")
    for column in ("run", "wall time (s)", "× ideal"):
        table.add_column(column, justify="right")
    table.add_row("ideal: one branch alone (best of 3)", f"{ideal:.2f}", "1.00")
    for number, seconds in enumerate(whole, 1):
        table.add_row(f"{args.branches} branches, run {number}", f"{seconds:.2f}", f"{seconds / ideal:.2f}")
    table.add_row(f"for reference: starting {args.branches} subkernels alone", f"{startup:.2f}",
                  f"{startup / ideal:.2f}")
    table.add_row(f"serial bound: {args.branches} × ideal", f"{args.branches * ideal:.2f}",
                  f"{args.branches:.2f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
