"""Hostile corpus benchmark: how long until a branch's kernel is usable again after each case
in tests/integration/hostile/, and what a kernel start costs with and without the sandbox.

    python benchmarks/hostile.py [--starts N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "hostile"))

from _runner import load_cases, run_case  # noqa: E402

from jupyter_qwq.kernels import sandbox_check  # noqa: E402
from jupyter_qwq.kernels import KernelPool, Subkernel  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def start_cost(sandboxed: bool, n: int) -> tuple[float, float]:
    """Median wall seconds of start() and mean CPU seconds per kernel (launcher + kernel)."""
    walls = []
    cpu_before = children_cpu()
    for _ in range(n):
        kernel = Subkernel(sandbox=sandboxed)
        started = time.monotonic()
        await kernel.start()
        walls.append(time.monotonic() - started)
        await kernel.shutdown()
    return statistics.median(walls), (children_cpu() - cpu_before) / n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    print(sandbox_check.format_report(), "\n")

    sandbox_check.available()  # the one-time probe is not part of any kernel's start
    for sandboxed in (False, True):
        wall, cpu = await start_cost(sandboxed, args.starts)
        label = "sandbox on " if sandboxed else "sandbox off"
        print(f"kernel start, {label}: {wall:.2f} s wall (median of {args.starts}), "
              f"{cpu:.2f} CPU-s each (kernel, launcher and sweeps)")
    print()

    env = {"JUPYTER_QWQ_TEST_PID": str(os.getpid())}
    header = f"{'case':<18}{'status':<9}{'restart':<8}{'replay':<7}{'limit':>6}" \
             f"{'block s':>9}{'usable s':>10}  state  left"
    print(header)
    print("-" * len(header))
    async with KernelPool(extra_env=env) as pool:
        for case in load_cases():
            await pool.fill(1)
            out = await run_case(pool, case)
            print(f"{case.name:<18}{out.status:<9}{'yes' if out.restarted else 'no':<8}"
                  f"{out.replayed:<7}{case.timeout:>6g}{out.block:>9.2f}{out.usable:>10.2f}  "
                  f"{'kept' if out.state_kept else 'LOST':<5}  "
                  f"{len(out.leftovers)}/{len(out.after_stop)}")
    print("\nusable s: from the block's start until the kernel answered the next block "
          "(limit included); left: extra processes while usable / after release.")


if __name__ == "__main__":
    asyncio.run(main())
