"""What runs on this machine, read from /proc: for the tests that check nothing is left behind.

A zombie has ended but was not reaped (this VM's PID 1 reaps nothing), so it counts as gone
unless a test asks to see zombies too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def _state_and_group(pid: int | str) -> tuple[str, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # it ended while we looked
    return fields[0], int(fields[2])


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def alive(pid: int) -> bool:
    found = _state_and_group(pid)
    return found is not None and found[0] != "Z"


def group_members(pgid: int, zombies: bool = False) -> list[int]:
    """Processes of a process group."""
    members = []
    for pid in _pids():
        found = _state_and_group(pid)
        if found is not None and found[1] == pgid and (zombies or found[0] != "Z"):
            members.append(pid)
    return members


def running(command_part: bytes) -> list[int]:
    """Live processes whose command line has `command_part` as one of its words."""
    pids = []
    for pid in _pids():
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command_part in words and alive(pid):
            pids.append(pid)
    return pids


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True
