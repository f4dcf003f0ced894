"""Loads the hostile corpus (every other .py file here) and runs one case in a sandboxed
subkernel. Shared by tests/test_sandbox.py and benchmarks/hostile.py; not a case itself."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Case:
    name: str
    code: str
    expect: set[str]  # acceptable Execution.status values
    restarted: str  # "yes", "no" or "any"
    timeout: float


@dataclass
class Outcome:
    case: Case
    status: str
    restarted: bool
    replayed: int
    feedback: str
    block: float  # seconds the hostile block took (its time limit included)
    usable: float  # seconds from the block's start until the kernel answered again
    state_kept: bool  # a variable set before the block is still there afterwards
    leftovers: list[int] = field(default_factory=list)  # extra processes once it is usable
    after_stop: list[int] = field(default_factory=list)  # processes left after release


def load_cases() -> list[Case]:
    cases = []
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        with open(os.path.join(HERE, name)) as f:
            code = f.read()
        meta = dict(
            line[2:].split(":", 1) for line in code.splitlines()
            if line.startswith("# ") and ":" in line and line[2:].split(":", 1)[0].isalpha()
        )
        cases.append(Case(
            name=name[:-3],
            code=code,
            expect=set(meta["expect"].strip().split("|")),
            restarted=meta.get("restarted", "any").strip(),
            timeout=float(meta.get("timeout", "10")),
        ))
    return cases


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def kernel_processes(kernel) -> set[int]:
    """Live processes of the kernel's uid or cgroup (sandbox), else of its process group."""
    box = kernel._sandbox
    return _live(box.pids() if box is not None else set(group_members(kernel.pgid or -1)))


def _live(pids: set[int]) -> set[int]:
    live = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    live.add(pid)
        except OSError:
            pass
    return live


async def run_case(pool, case: Case) -> Outcome:
    kernel = await pool.acquire()
    await kernel.execute("kept_before = 'still here'", timeout=10)
    started = time.monotonic()
    result = await kernel.execute(case.code, timeout=case.timeout)
    block = time.monotonic() - started
    probe = await kernel.execute("print(kept_before)", timeout=30)
    usable = time.monotonic() - started
    leftovers = sorted(kernel_processes(kernel) - {kernel.pid})
    box, pgid = kernel._sandbox, kernel.pgid
    await pool.release(kernel)
    after = set(group_members(pgid)) if pgid else set()
    if box is not None:
        after |= _live(box.pids())
    return Outcome(
        case=case,
        status=result.status,
        restarted=result.restarted,
        replayed=result.replayed,
        feedback=result.feedback(limit=600),
        block=block,
        usable=usable,
        state_kept=probe.feedback() == "still here",
        leftovers=leftovers,
        after_stop=sorted(after),
    )
