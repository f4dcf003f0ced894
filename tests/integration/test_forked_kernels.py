"""Subkernels forked from the fork server: fresh processes with fresh state, each in its own
sandbox, nothing shared between branches, nothing left when the owner goes. Real kernels."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytest_asyncio
from processes import alive, group_members, wait_until

from jupyter_qwq.kernels import KernelPool, Subkernel, forkserver

ROOT = str(Path(__file__).resolve().parents[2])


def socket_inodes(pid: int | str) -> set[str]:
    """The sockets a process holds open, as 'socket:[inode]' (the same on both ends' view)."""
    found = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.mark.timeout(120)
async def test_branches_share_no_variables_files_or_processes():
    async with KernelPool() as pool:
        first, second = await asyncio.gather(pool.acquire(), pool.acquire())
        assert first.forked and second.forked and first.sandboxed and second.sandboxed
        planted = await first.execute(textwrap.dedent("""
            import random, subprocess, sympy, numpy
            secret = 'first branch'
            open('note.txt', 'w').write(secret)
            sympy.planted_by_first = True          # a preloaded module, changed in place
            child = subprocess.Popen(['sleep', '600'])
            print(child.pid, numpy.random.randint(1 << 30), random.getrandbits(30))
            """), timeout=20)
        assert planted.status == "ok", planted.feedback()
        sleeper, *first_draws = planted.feedback().split()
        assert os.path.exists(os.path.join(first.cwd, "note.txt"))

        # A kernel forked after the first one ran code starts from the same pristine server.
        third = await pool.acquire()
        for other in (second, third):
            seen = await other.execute(textwrap.dedent(f"""
                import os, random, numpy, sympy
                print('secret' in globals(), hasattr(sympy, 'planted_by_first'))
                print(sorted(os.listdir('.')), os.path.exists({os.path.join(first.cwd, 'note.txt')!r}))
                pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
                print({first.pid} in pids, {sleeper} in pids)
                try:
                    os.kill({sleeper}, 9)
                except OSError as error:
                    print(type(error).__name__)
                print(numpy.random.randint(1 << 30), random.getrandbits(30))
                """), timeout=20)
            assert seen.status == "ok", seen.feedback()
            globals_line, files_line, pids_line, kill_line, draw = seen.feedback().splitlines()
            assert globals_line == "False False"  # no variable, no change to a shared module
            assert files_line == "[] False"  # a fresh, empty work directory; the other's unseen
            assert pids_line == "False False"  # the other kernel and its child are invisible
            assert kill_line in ("PermissionError", "ProcessLookupError")
            assert draw.split() != first_draws  # random generators are seeded afresh, not copied
        assert alive(int(sleeper))  # still running in the first branch: nobody could touch it
        assert (await first.execute("print(secret)", timeout=10)).feedback() == "first branch"


@pytest_asyncio.fixture
async def kernel():
    kernel = Subkernel()
    await kernel.start()
    yield kernel
    await kernel.shutdown()


@pytest.mark.timeout(120)
async def test_a_forked_kernel_holds_nothing_of_the_fork_server(kernel):
    assert kernel.forked
    [server] = forkserver.servers()
    listing = await kernel.execute(textwrap.dedent(f"""
        import os
        print(os.path.exists({server.socket_path!r}), os.path.exists({server.dir!r}))
        """), timeout=10)
    assert listing.feedback() == "False False"  # its socket is outside the sandbox's view
    # No descriptor of the server's sockets (listener, other kernels' connections) survived.
    assert socket_inodes(kernel.pid).isdisjoint(socket_inodes(server.pid))
    assert os.listdir(f"/proc/{server.pid}/task") == [str(server.pid)]  # it forks single-threaded


@pytest.mark.timeout(120)
async def test_interrupt_crash_and_restart_work_on_forked_kernels(kernel):
    await kernel.execute("kept = 7", timeout=10)
    slow = await kernel.execute("import time\ntime.sleep(60)", timeout=1)
    assert slow.status == "timeout"  # stopped by SIGINT, or by a restart on a loaded machine
    crash = await kernel.execute("import os\nos._exit(3)", timeout=20)
    assert (crash.status, crash.restarted, crash.exit_code) == ("crashed", True, 3)
    assert kernel.forked  # the restarted kernel was forked too
    assert (await kernel.execute("print(kept)", timeout=10)).feedback() == "7"


@pytest.mark.timeout(120)
async def test_a_kernel_the_server_cannot_run_is_launched_and_the_log_says_so(
        tmp_path, monkeypatch, caplog):
    spec_dir = tmp_path / "kernels" / "qwq-other-entry"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel", "-f", "{connection_file}"],
        "display_name": "ipykernel through -m ipykernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    kernel = Subkernel(kernel_name="qwq-other-entry")
    try:
        with caplog.at_level(logging.WARNING, logger="jupyter_qwq.kernels.provisioner"):
            await kernel.start()
        assert kernel.sandboxed and not kernel.forked
        assert (await kernel.execute("print(6 * 7)", timeout=10)).feedback() == "42"
        assert any("slow way" in r.getMessage() and "ipykernel_launcher" in r.getMessage()
                   for r in caplog.records)
    finally:
        await kernel.shutdown()


@pytest.mark.timeout(120)
def test_fork_server_and_its_kernels_end_when_the_owner_is_killed():
    script = textwrap.dedent("""
        import asyncio, os, sys
        from jupyter_qwq.kernels import Subkernel, forkserver

        async def main():
            kernel = Subkernel()
            await kernel.start()
            [server] = forkserver.servers()
            print(server.pid, kernel.pgid, kernel.forked, server.dir, flush=True)
            await asyncio.sleep(600)  # killed here, with no chance to clean up

        asyncio.run(main())
        """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": ROOT})
    try:
        server_pid, kernel_group, forked, server_dir = owner.stdout.readline().split()
        assert forked == "True"
        assert alive(int(server_pid)) and group_members(int(kernel_group))
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert wait_until(lambda: not group_members(int(kernel_group)), timeout=10)
    assert wait_until(lambda: not alive(int(server_pid)), timeout=10)
    assert not os.path.exists(server_dir)  # its socket and log went with it
