"""Every process jupyter_qwq starts, owned in one place.

Servers, subkernels and the sandbox all go through here:

- ``spawn`` starts a command in a process group of its own (``start_new_session``), its output in a
  log file, never an undrained pipe;
- ``own`` records a group started elsewhere (jupyter_client starts the kernels), with what else to
  clean up when it goes (a sandbox's uid sweep and cgroups, a private directory);
- ``stop`` signals the whole group, SIGTERM and then SIGKILL after a grace period, reaps the
  leader and runs the cleanup; ``stop_all`` does it for everything still owned, and runs at
  interpreter exit; ``sweep`` kills processes that left their group (a sandbox's uid or cgroup);
- ``group_members``, ``alive`` and ``running`` read /proc, for stopping and for the tests that check
  nothing is left behind.

A zombie has ended but was not reaped (a container's PID 1 may reap nothing): it counts as gone
unless asked for.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Owned", "alive", "environment_has", "group_members", "own", "owned", "running", "spawn",
           "stop", "stop_all", "sweep"]

_PROC = Path("/proc")


@dataclass(eq=False)
class Owned:
    """A process group this process started and must stop."""

    pgid: int
    kind: str  # "server", "kernel": what it is, for stop_all(kind) and messages
    proc: subprocess.Popen | None = None  # its leader, when we hold it: reaped on stop
    cleanup: list[Callable[[], None]] = field(default_factory=list)  # after the group is gone
    owner_pid: int = field(default_factory=os.getpid)


_OWNED: dict[int, Owned] = {}  # by process group


def spawn(cmd: Sequence[str], *, kind: str, log: IO[bytes], env: dict[str, str] | None = None,
          cwd: str | None = None) -> subprocess.Popen:
    """Start `cmd` in a new process group, its output in `log`, and own it."""
    proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env, cwd=cwd)
    own(proc.pid, kind, proc=proc)
    return proc


def own(pgid: int, kind: str, *, proc: subprocess.Popen | None = None,
        cleanup: Callable[[], None] | None = None) -> Owned:
    """Record a process group (started elsewhere, e.g. by jupyter_client) as ours to stop."""
    _stop_all_when_terminated()
    owned_group = _OWNED.get(pgid)
    if owned_group is None or owned_group.owner_pid != os.getpid():
        owned_group = _OWNED[pgid] = Owned(pgid, kind, proc)
    if cleanup is not None:
        owned_group.cleanup.append(cleanup)
    return owned_group


def owned(kind: str | None = None) -> list[Owned]:
    """What this process owns and has not stopped (not a forked child's copies of its parent's)."""
    return [o for o in list(_OWNED.values())
            if o.owner_pid == os.getpid() and (kind is None or o.kind == kind)]


def stop(pgid: int | None, grace: float = 10.0, *, kill_now: bool = False,
         cleanup: bool = True) -> None:
    """Stop a whole process group: SIGTERM (or SIGKILL at once), then SIGKILL after `grace`
    seconds; reap its leader; run its cleanup (unless told not to: a kernel's restart keeps its
    directory). Synchronous, idempotent, safe for any pgid."""
    if not pgid or pgid <= 1 or pgid == os.getpgid(0):
        return  # never our own group (or init's): that would take the caller down too
    owned_group = _OWNED.pop(pgid, None)
    proc = owned_group.proc if owned_group is not None else None
    try:
        if not kill_now:
            _signal_group(pgid, signal.SIGTERM)
            if _wait_gone(pgid, grace, proc):
                return
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone(pgid, 5.0, proc)  # only a process stuck in the kernel outlives this
    finally:
        for step in owned_group.cleanup if owned_group is not None and cleanup else ():
            try:
                step()
            except Exception:  # cleanup is best effort: one failure must not skip the rest
                pass


def sweep(find: Callable[[], set[int]], deadline: float) -> None:
    """SIGKILL the processes `find` lists (a sandbox's uid or cgroup: they may have left the
    group), again and again until it lists none (children forked meanwhile go too) or the
    deadline passes."""
    while time.monotonic() < deadline:
        pids = find()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def stop_all(kind: str | None = None, grace: float = 5.0) -> None:
    for owned_group in owned(kind):
        stop(owned_group.pgid, grace)


atexit.register(stop_all)


def _stop_all_when_terminated() -> None:
    """SIGTERM and SIGHUP end a Python process without atexit: where nobody else handles them,
    stop what we own first, then die of the signal as before (kill PID, a closed terminal)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _stop_all_then_die)


def _stop_all_then_die(signum: int, _frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)
    try:
        stop_all(grace=3.0)
    finally:
        os.kill(os.getpid(), signum)


_stop_all_when_terminated()


# -- reading /proc ------------------------------------------------------------------------------


def _state_and_group(pid: int | str) -> tuple[str, int] | None:
    try:
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # it ended while we looked
    return fields[0], int(fields[2])


def _pids() -> Iterator[int]:
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            yield int(entry.name)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    found = _state_and_group(pid)
    return found is not None and found[0] != "Z"


def group_members(pgid: int, zombies: bool = False) -> list[int]:
    """The processes of a process group."""
    if not _PROC.is_dir():  # no /proc: ask the kernel whether the group exists at all
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    try:
        os.killpg(pgid, 0)  # reaches zombies too: no such group means no member at all
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for pid in _pids():
        found = _state_and_group(pid)
        if found is not None and found[1] == pgid and (zombies or found[0] != "Z"):
            members.append(pid)
    return members


def running(command_word: bytes) -> list[int]:
    """Live processes whose command line has `command_word` as one of its words."""
    pids = []
    for pid in _pids():
        try:
            words = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command_word in words and alive(pid):
            pids.append(pid)
    return pids


def environment_has(pid: int, marker: bytes) -> bool:
    """Whether `marker` (e.g. b"NAME=value") is one of the process's environment entries."""
    try:
        return marker in (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pgid: int, timeout: float, proc: subprocess.Popen | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        # reap the leader first: /proc hides zombies, so "no live member" alone could leave the
        # leader unreaped
        leader_gone = proc is None or proc.poll() is not None
        if leader_gone and not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
