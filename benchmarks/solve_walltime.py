"""Wall time of a solve against the scripted server, beside the ideal.

Each branch streams a reply with a delay per chunk, runs one code block in its real subkernel, and
streams a final answer. Branches are independent, so the ideal wall time of a solve is the time of
its slowest branch alone: one branch solved the same way, in the same run (best of 3); the
overhead is what concurrency, subkernels and voting add on top. The scripted server runs in a
process of its own, as an engine does, so its threads do not take the solver's interpreter lock.

Three ways of getting the kernels, alternating solve by solve so a background load weighs on all
alike:

* held open, warm: a `Solving` kept open with `warm_kernels` = branches, as the notebook holds
  one: each solve's kernels were started after the previous solve, while the user read it (the
  benchmark waits for them, as that reading time would);
* one-shot, forked: `async_solve`, which starts the kernels from the fork server during the solve
  and stops them before it returns;
* one-shot, launched (`--no-fork-kernels`): the same with a new interpreter per kernel.

A first solve of each way, not counted, starts the fork server (once per process) and fills the
caches a first solve fills.

    python benchmarks/solve_walltime.py [--branches 8] [--chunks 40] [--delay 0.01] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console
from rich.table import Table
from scripted_server import Reply, ScriptedServer, branch_and_round, last_output

from jupyter_qwq import Session, Solving, async_solve
from jupyter_qwq.kernels import KernelPool

Solve = Callable[[int], Awaitable[tuple[float, Session]]]  # seed -> seconds, its record


def make_script(chunks: int, delay: float):
    def script(body):
        branch, round_ = branch_and_round(body)
        if round_ == 1:
            prose = "Let me think about it. " * max(1, chunks // 6)
            return Reply(f"{prose}\n```python\nprint({branch} + 35)\n```", chunk_chars=4, delay=delay)
        return Reply(f"It printed {last_output(body)}. \\boxed{{{last_output(body)}}}", chunk_chars=4, delay=delay)

    return script


def serve(chunks: int, delay: float) -> None:
    """The scripted server's own process: say the URL, serve until stdin closes."""
    with ScriptedServer(make_script(chunks, delay)) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


@contextlib.contextmanager
def server_process(chunks: int, delay: float) -> Iterator[str]:
    """The scripted server in a process of its own; its base URL."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--chunks", str(chunks),
                             "--delay", str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def options(url: str, branches: int, fork: bool = True) -> dict:
    return {"engine": "endpoint", "endpoint": url, "branches": branches, "rounds": 1,
            "early_stop": False, "fork_kernels": fork}


def one_shot(url: str, branches: int, fork: bool) -> Solve:
    async def solve(seed: int) -> tuple[float, Session]:
        started = time.monotonic()
        session = await async_solve("Add 35.", seed=seed, **options(url, branches, fork))
        return time.monotonic() - started, session

    return solve


@contextlib.asynccontextmanager
async def held_open(url: str, branches: int) -> AsyncIterator[Solve]:
    """Solves on one open `Solving` whose warm kernels are ready before each is timed."""
    async with Solving(warm_kernels=branches, **options(url, branches)) as solving:
        async def solve(seed: int) -> tuple[float, Session]:
            assert solving.kernels is not None
            await solving.kernels.fill(branches)
            await solving.kernels.ready()  # the user reads the last answer meanwhile
            started = time.monotonic()
            session = await solving.solve("Add 35.", seed=seed)
            return time.monotonic() - started, session

        yield solve


async def kernel_startup(count: int, fork: bool) -> float:
    """Starting `count` subkernels at once, alone: the floor under a cold solve's overhead."""
    started = time.monotonic()
    async with KernelPool(fork_server=fork) as pool:
        await pool.prestart(count)
        for _ in range(count):
            await pool.acquire()
        return time.monotonic() - started


async def measure(url: str, branches: int, runs: int) -> dict[str, tuple[float, list[tuple[float, Session]]]]:
    """For each way: (its ideal, its `runs` solves of `branches` branches, with their records)."""
    async with held_open(url, branches) as warm, held_open(url, 1) as warm_alone:
        ways: dict[str, tuple[Solve, Solve]] = {
            "held open, kernels warm": (warm_alone, warm),
            "one-shot, kernels forked": (one_shot(url, 1, True), one_shot(url, branches, True)),
            "one-shot, kernels launched": (one_shot(url, 1, False), one_shot(url, branches, False)),
        }
        for alone, many in ways.values():  # not counted: the fork server starts, caches fill
            await many(0)
            await alone(0)
        ideals: dict[str, list[float]] = {way: [] for way in ways}
        times: dict[str, list[tuple[float, Session]]] = {way: [] for way in ways}
        for seed in range(1, max(3, runs) + 1):
            for way, (alone, many) in ways.items():
                if seed <= 3:
                    ideals[way].append((await alone(seed))[0])
                if seed <= runs:
                    times[way].append(await many(seed))
    return {way: (min(ideals[way]), times[way]) for way in ways}


PHASES = ("to start", "reply 1", "to code", "code", "to reply 2", "reply 2", "to return")


def phases(branch, seconds: float) -> list[float]:
    """Where a branch's part of a solve went, from its record's timings (seconds since the solve
    began): waits between the steps are the pipeline's, the steps' own durations the stream's
    and the kernel's; `seconds` is the solve as the caller timed it."""
    text1, code, text2 = (branch.steps + [None] * 3)[:3]
    if code is None or text2 is None:
        return [float("nan")] * len(PHASES)
    return [branch.started, text1.duration, code.started - text1.started - text1.duration, code.duration,
            text2.started - code.started - code.duration, text2.duration, seconds - branch.ended]


def where_the_time_went(slowest: dict[str, tuple[float, Session]]) -> Table:
    """The slowest solve of each way: its slowest branch, phase by phase."""
    table = Table(title="the slowest solve of each way: its last branch to end, phase by phase (s)")
    table.add_column("kernels")
    for phase in (*PHASES, "solve"):
        table.add_column(phase, justify="right")
    for way, (seconds, session) in slowest.items():
        last = max(session.branches, key=lambda b: b.ended)
        table.add_row(way, *(f"{value:.2f}" for value in phases(last, seconds)), f"{seconds:.2f}")
    return table


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=3, help="solves per way of getting kernels")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.chunks, args.delay)
        return
    with server_process(args.chunks, args.delay) as url:
        results = await measure(url, args.branches, args.runs)
    startup = {way: await kernel_startup(args.branches, fork)
               for way, fork in {"forked": True, "launched": False}.items()}
    table = Table(title=f"solve wall time, {args.branches} branches, scripted server "
                        f"(load average {os.getloadavg()[0]:.1f})")
    for column in ("kernels", "ideal: one branch alone (s)", f"{args.branches} branches, each run (s)",
                   "median (s)", "× ideal"):
        table.add_column(column, justify="right")
    for way, (ideal, solves) in results.items():
        seconds = [s for s, _ in solves]
        median = statistics.median(seconds)
        table.add_row(way, f"{ideal:.2f}", " ".join(f"{s:.2f}" for s in seconds), f"{median:.2f}",
                      f"[b]{median / ideal:.2f}[/b]")
    Console().print(table)
    Console(width=130).print(where_the_time_went({way: max(solves, key=lambda s: s[0]) for way, (_, solves) in results.items()}))
    for way, seconds in startup.items():
        print(f"for reference: starting {args.branches} subkernels at once, {way}: {seconds:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
