"""Wall time of a solve against the scripted server, beside the ideal.

Each branch streams a reply with a delay per chunk, runs one code block in its real subkernel, and
streams a final answer. Branches are independent, so the ideal wall time of a solve is the time of
its slowest branch alone (measured in the same run, one branch at a time); the overhead is what
concurrency, subkernel start-up and voting add on top. Subkernels forked from the fork server
(the default) and launched as new interpreters (`--no-fork-kernels`) alternate run by run, so a
background load weighs on both alike; a first solve, not counted, starts the fork server (once
per process) and fills the caches a first solve fills.

    python benchmarks/solve_walltime.py [--branches 8] [--chunks 40] [--delay 0.01] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console
from rich.table import Table
from scripted_server import Reply, ScriptedServer, branch_and_round, last_output

from jupyter_qwq import async_solve
from jupyter_qwq.kernels import KernelPool


def make_script(chunks: int, delay: float):
    def script(body):
        branch, round_ = branch_and_round(body)
        if round_ == 1:
            prose = "Let me think about it. " * max(1, chunks // 6)
            return Reply(f"{prose}\n```python\nprint({branch} + 35)\n```", chunk_chars=4, delay=delay)
        return Reply(f"It printed {last_output(body)}. \\boxed{{{last_output(body)}}}", chunk_chars=4, delay=delay)

    return script


async def timed_solve(server: ScriptedServer, branches: int, seed: int = 0, fork: bool = True) -> float:
    started = time.monotonic()
    await async_solve("Add 35.", engine="endpoint", endpoint=server.base_url, branches=branches,
                      rounds=1, seed=seed, early_stop=False, fork_kernels=fork)
    return time.monotonic() - started


async def kernel_startup(count: int, fork: bool) -> float:
    """Starting `count` subkernels at once, alone: the floor under a cold solve's overhead."""
    started = time.monotonic()
    async with KernelPool(fork_server=fork) as pool:
        await pool.prestart(count)
        for _ in range(count):
            await pool.acquire()
        return time.monotonic() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=3, help="solves per way of starting kernels")
    args = parser.parse_args()
    ways = {"forked": True, "launched": False}
    runs: dict[str, list[float]] = {way: [] for way in ways}
    with ScriptedServer(make_script(args.chunks, args.delay)) as server:
        await timed_solve(server, args.branches)  # not counted: the fork server starts, caches fill
        ideal = min([await timed_solve(server, 1, seed=i) for i in range(3)])
        for _ in range(args.runs):
            for way, fork in ways.items():
                runs[way].append(await timed_solve(server, args.branches, fork=fork))
    startup = {way: await kernel_startup(args.branches, fork) for way, fork in ways.items()}
    table = Table(title=f"solve wall time, {args.branches} branches, scripted server")
    for column in ("run", "wall time (s)", "× ideal"):
        table.add_column(column, justify="right")
    table.add_row("ideal: one branch alone (best of 3)", f"{ideal:.2f}", "1.00")
    for way, seconds in runs.items():
        for number, run in enumerate(seconds, 1):
            table.add_row(f"{args.branches} branches, kernels {way}, run {number}", f"{run:.2f}",
                          f"{run / ideal:.2f}")
        median = statistics.median(seconds)
        table.add_row(f"[b]{args.branches} branches, kernels {way}, median[/b]", f"{median:.2f}",
                      f"[b]{median / ideal:.2f}[/b]")
    for way, seconds in startup.items():
        table.add_row(f"for reference: starting {args.branches} subkernels alone, {way}",
                      f"{seconds:.2f}", f"{seconds / ideal:.2f}")
    table.add_row(f"serial bound: {args.branches} × ideal", f"{args.branches * ideal:.2f}",
                  f"{args.branches:.2f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
