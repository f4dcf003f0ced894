"""Subkernels on real ipykernel processes: no mocks, every test bounded in time.

Two module-scoped kernels keep the file fast: `kernel` for tests that leave its state intact,
`scratch` for tests that crash or restart it. Pools in the lifecycle tests are their own.
"""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytest_asyncio

from jupyter_qwq import kernels
from jupyter_qwq.exceptions import KernelError
from jupyter_qwq.kernels import Execution, KernelPool, Subkernel
from jupyter_qwq.kernels.execution import MAX_OUTPUT_BYTES
from jupyter_qwq.kernels.subkernel import INLINE_BACKEND

from processes import alive, group_members

module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool():
    async with KernelPool() as pool:
        await pool.prestart(2)  # both module kernels start in parallel
        yield pool


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kernel(pool):
    return await pool.acquire()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scratch(pool):
    return await pool.acquire()


# -- feedback: no kernel needed ----------------------------------------------------------------


def test_public_names():
    assert sorted(kernels.__all__) == ["Execution", "KernelPool", "Subkernel"]


def test_feedback_keeps_head_and_tail_of_long_output():
    text = "HEAD" + "x" * 5000 + "TAIL"
    execution = Execution("ok", [{"output_type": "stream", "name": "stdout", "text": text}])

    feedback = execution.feedback(limit=200)

    assert feedback.startswith("HEAD") and feedback.endswith("TAIL")
    assert "(4808 characters cut)" in feedback
    assert len(feedback) < 260


def test_feedback_of_an_empty_execution_tells_the_model_to_print():
    assert "print()" in Execution("ok", []).feedback()


def test_feedback_strips_ansi_from_tracebacks():
    error = {
        "output_type": "error",
        "ename": "ValueError",
        "evalue": "bad",
        "traceback": ["\x1b[0;31mCell In[1], line 1\x1b[0m\n----> 1 f()", "ValueError: bad"],
    }
    feedback = Execution("error", [error]).feedback()
    assert "\x1b" not in feedback
    assert feedback.splitlines()[-1] == "ValueError: bad"


# -- one kernel, state kept ---------------------------------------------------------------------


@module_loop
@pytest.mark.timeout(60)
async def test_state_persists_across_executions(kernel):
    await kernel.execute("x = 41", timeout=10)
    result = await kernel.execute("x + 1", timeout=10)
    assert result.status == "ok"
    assert result.feedback() == "42"


@module_loop
@pytest.mark.timeout(60)
async def test_two_kernels_do_not_share_state(kernel, scratch):
    await kernel.execute("secret = 'only here'", timeout=10)
    result = await scratch.execute("secret", timeout=10)
    assert result.status == "error"
    assert "NameError" in result.feedback()


@module_loop
@pytest.mark.timeout(30)
async def test_stdout_and_stderr_are_captured_and_merged(kernel):
    code = "import sys\nprint('a')\nprint('b')\nprint('warn', file=sys.stderr)"
    result = await kernel.execute(code, timeout=10)
    streams = [(o["name"], o["text"]) for o in result.outputs]
    assert streams == [("stdout", "a\nb\n"), ("stderr", "warn\n")]
    assert result.feedback() == "a\nb\nwarn"


@module_loop
@pytest.mark.timeout(30)
async def test_errors_reach_the_model(kernel):
    result = await kernel.execute("1/0", timeout=10)
    assert result.status == "error"
    assert result.outputs[-1]["ename"] == "ZeroDivisionError"
    assert "ZeroDivisionError: division by zero" in result.feedback()
    assert "----> 1 1/0" in result.feedback()


@module_loop
@pytest.mark.timeout(30)
async def test_clear_output_drops_earlier_output(kernel):
    code = "from IPython.display import clear_output\nprint('old')\nclear_output()\nprint('new')"
    result = await kernel.execute(code, timeout=10)
    assert result.feedback() == "new"


@module_loop
@pytest.mark.timeout(60)
async def test_matplotlib_plot_comes_back_as_png(kernel):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()"
    result = await kernel.execute(code, timeout=30)
    images = [o for o in result.outputs if "image/png" in o.get("data", {})]
    assert result.status == "ok"
    assert images and images[0]["output_type"] == "display_data"
    assert base64.b64decode(images[0]["data"]["image/png"]).startswith(b"\x89PNG")
    assert "[image]" in result.feedback()


@module_loop
@pytest.mark.timeout(30)
async def test_input_fails_fast_instead_of_hanging(kernel):
    result = await kernel.execute("input('your answer? ')", timeout=10)
    assert result.status == "error"
    assert result.duration < 5
    assert "StdinNotImplementedError" in result.feedback()


@module_loop
@pytest.mark.timeout(60)
async def test_huge_output_is_capped(kernel):
    result = await kernel.execute("for _ in range(50): print('x' * 100_000)", timeout=30)
    collected = sum(len(o["text"]) for o in result.outputs if o["output_type"] == "stream")
    assert result.status == "ok"
    assert collected < MAX_OUTPUT_BYTES + 200  # 5 MB printed
    assert "output truncated" in result.outputs[-1]["text"]
    assert "output truncated" in result.feedback()


@module_loop
@pytest.mark.timeout(60)
async def test_timeout_interrupts_and_keeps_state(kernel):
    await kernel.execute("kept = 'still here'", timeout=10)
    result = await kernel.execute("while True: pass", timeout=2)
    assert result.status == "timeout"
    assert not result.restarted
    assert 2 <= result.duration < 5
    assert "Execution timed out after 2 seconds" in result.feedback()
    assert "KeyboardInterrupt" not in result.feedback()
    assert (await kernel.execute("kept", timeout=10)).feedback() == "'still here'"


@module_loop
@pytest.mark.timeout(30)
async def test_cancelled_execution_is_interrupted(kernel):
    await kernel.execute("kept = 'still here'", timeout=10)
    running = asyncio.create_task(kernel.execute("import time\nwhile True: time.sleep(0.05)", 20))
    await asyncio.sleep(0.5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    result = await kernel.execute("kept", timeout=5)
    assert (result.status, result.feedback()) == ("ok", "'still here'")


@module_loop
@pytest.mark.timeout(30)
async def test_kernel_is_isolated_and_tied_to_this_process(kernel):
    code = "import os; print(os.environ['JPY_PARENT_PID'], os.getcwd(), os.environ['MPLBACKEND'])"
    parent_pid, cwd, backend = (await kernel.execute(code, timeout=10)).feedback().split()
    assert parent_pid == str(os.getpid())
    assert cwd == os.path.realpath(kernel.cwd)
    assert backend == INLINE_BACKEND
    assert os.getpgid(kernel.pid) == kernel.pid != os.getpgid(0)  # its own process group
    private_dir = os.path.dirname(kernel.connection_file)
    assert stat.S_IMODE(os.stat(private_dir).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(kernel.connection_file).st_mode) & 0o077 == 0


# -- scratch kernel: restarts ------------------------------------------------------------------


@module_loop
@pytest.mark.timeout(60)
async def test_interrupt_ignored_restarts_the_kernel(scratch):
    await scratch.execute("lost = 1", timeout=10)
    old_pid = scratch.pid
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    result = await scratch.execute(code, timeout=2)
    assert result.status == "timeout"
    assert result.restarted
    assert "restarted" in result.feedback() and "1 earlier block was re-run" in result.feedback()
    assert scratch.pid != old_pid and not alive(old_pid)
    assert (await scratch.execute("print('back')", timeout=20)).feedback() == "back"
    # The block that had succeeded was replayed: the branch keeps its state.
    assert (await scratch.execute("print(lost)", timeout=10)).feedback() == "1"


@module_loop
@pytest.mark.timeout(60)
async def test_crash_is_reported_and_the_kernel_restarted(scratch):
    result = await scratch.execute("import os; os._exit(1)", timeout=30)
    assert result.status == "crashed"
    assert result.restarted
    assert result.duration < 10  # found by polling, not by waiting out the timeout
    assert "The kernel crashed (exit code 1)" in result.feedback()
    assert (await scratch.execute("print(6 * 7)", timeout=20)).feedback() == "42"


# -- pool lifecycle ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_prestarted_kernel_is_handed_out():
    async with KernelPool() as pool:
        await pool.prestart(1)
        [prestarted] = pool.kernels
        assert not prestarted.alive  # prestart returns at once; ready() waits for the start
        await pool.ready()
        assert prestarted.alive and pool.warm == 1
        acquired = await pool.acquire()
        assert acquired is prestarted and acquired.alive
        assert pool.kernels == (prestarted,)  # no cold start happened


@pytest.mark.timeout(60)
async def test_shutdown_leaves_no_process_or_directory_behind():
    pool = KernelPool()
    first, second = await asyncio.gather(pool.acquire(), pool.acquire())
    # A grandchild in the kernel's group must go too, not only the kernel.
    await first.execute("import subprocess; subprocess.Popen(['sleep', '600'])", timeout=10)
    groups = [first.pgid, second.pgid]
    dirs = [os.path.dirname(k.connection_file) for k in (first, second)]
    assert len(group_members(first.pgid)) == 2

    await pool.shutdown()
    await pool.shutdown()  # idempotent

    assert all(group_members(pgid) == [] for pgid in groups)
    assert not any(os.path.exists(d) for d in dirs)
    assert not first.alive and pool.kernels == ()
    with pytest.raises(KernelError):
        await first.execute("1", timeout=5)
    with pytest.raises(KernelError):
        await pool.acquire()


@pytest.mark.timeout(60)
async def test_shutdown_during_prestart_stops_half_started_kernels():
    pool = KernelPool()
    await pool.prestart(2)
    while not all(k.pid for k in pool.kernels):  # launched, still starting up
        await asyncio.sleep(0.02)
    groups = [k.pgid for k in pool.kernels]

    await pool.shutdown()

    assert all(group_members(pgid) == [] for pgid in groups)
    assert pool.kernels == ()


@pytest.mark.timeout(60)
async def test_released_kernel_is_stopped():
    async with KernelPool() as pool:
        kernel = await pool.acquire()
        pid = kernel.pid
        await pool.release(kernel)
        assert not alive(pid) and pool.kernels == ()


@pytest.mark.timeout(60)
async def test_a_kernel_released_without_waiting_is_stopped_by_the_pools_shutdown():
    pool = KernelPool()
    kernel = await pool.acquire()
    pid = kernel.pid
    await pool.release(kernel, wait=False)  # a branch with its answer goes on at once
    assert alive(pid) and pool.kernels == ()  # not waited for: it stops in the background
    await pool.shutdown()
    assert not alive(pid)


@pytest.mark.timeout(30)
async def test_unknown_kernel_name_says_what_to_do():
    with pytest.raises(KernelError, match="kernelspec list"):
        await Subkernel(kernel_name="no-such-kernel-qwq").start()


@pytest.mark.timeout(60)
def test_interpreter_exit_kills_kernels_left_running():
    script = textwrap.dedent(
        """
        import asyncio
        from jupyter_qwq.kernels import KernelPool

        async def main():
            kernel = await KernelPool().acquire()  # never shut down: atexit must do it
            # The kernel's parent-death watch would not stop this grandchild; killpg does.
            await kernel.execute("import subprocess; subprocess.Popen(['sleep', '600'])", 10)
            print(kernel.pgid, kernel.cwd, flush=True)

        asyncio.run(main())
        """
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, env=env
    )
    assert done.returncode == 0, done.stderr
    pgid, cwd = done.stdout.split()
    assert group_members(int(pgid)) == []
    assert not os.path.exists(cwd)
