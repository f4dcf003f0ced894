"""The subkernel sandbox against hostile code: real sandboxed kernels, no mocks.

Each file in tests/hostile/ runs as a branch's block in a fresh sandboxed kernel; the host-side
checks below say what "contained" means for it. Bounded: every test has a timeout.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import stat
import sys

import pytest
import pytest_asyncio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile"))

from _runner import kernel_processes, load_cases, run_case  # noqa: E402

from jupyter_qwq.kernels.sandbox import GiB, MiB  # noqa: E402
from jupyter_qwq.kernels.sandbox_check import format_report, sandbox_report  # noqa: E402
from jupyter_qwq.kernels import KernelPool, Subkernel  # noqa: E402

module_loop = pytest.mark.asyncio(loop_scope="module")
CASES = {case.name: case for case in load_cases()}
TOKEN = secrets.token_hex(6)
ESCAPE = f"qwq-escape-{TOKEN}"


@pytest.fixture(scope="module")
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture(scope="module")
def secret_key():
    """A fake key in the real /root/.ssh (removed afterwards) and, if HOME differs, there too."""
    made_dirs, files = [], []
    content = f"QWQ-SECRET-{TOKEN}"
    for home in {"/root", os.path.expanduser("~")}:
        ssh = os.path.join(home, ".ssh")
        if not os.path.isdir(ssh):
            os.mkdir(ssh, 0o700)
            made_dirs.append(ssh)
        path = os.path.join(ssh, f"id_qwq_test_{TOKEN}")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(content)
        files.append(path)
    yield files[0], content
    for path in files:
        os.remove(path)
    for path in made_dirs:
        os.rmdir(path)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool(listener):
    env = {
        "JUPYTER_QWQ_TEST_PORT": str(listener.getsockname()[1]),
        "JUPYTER_QWQ_TEST_NAME": ESCAPE,
        "JUPYTER_QWQ_TEST_DIRS": f"{os.getcwd()}:{os.path.dirname(os.path.abspath(__file__))}",
        "JUPYTER_QWQ_TEST_PID": str(os.getpid()),
        "JUPYTER_QWQ_TEST_GLOB": os.path.join(os.getcwd(), "*"),
    }
    async with KernelPool(extra_env=env, memory_limit=2 * GiB) as pool:
        await pool.prestart(2)
        yield pool


def escaped_files() -> list[str]:
    places = ["/tmp", "/root", os.path.expanduser("~"), "/", "/dev/shm", "/var/tmp", "/usr",
              "/etc", os.getcwd(), os.path.dirname(os.path.abspath(__file__))]
    return [p for p in (os.path.join(d, ESCAPE) for d in places) if os.path.lexists(p)]


# -- report --------------------------------------------------------------------------------------


def test_report_says_what_is_in_force():
    rows = sandbox_report()
    assert all(isinstance(n, str) and isinstance(on, bool) and d for n, on, d in rows)
    text = format_report(rows)
    assert text.startswith("Subkernel sandbox:") and "no network" in text
    if os.geteuid() == 0:  # as root every protection can be put in force
        assert [n for n, on, _ in rows if not on] == []


# -- the hostile corpus ------------------------------------------------------------------------


@module_loop
@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", sorted(CASES))
async def test_hostile_case_is_contained(pool, name, listener, secret_key):
    case = CASES[name]
    await pool.fill(2)  # the next case's kernel starts while this one runs
    outcome = await run_case(pool, case)
    print(f"\n{name}: {outcome.status} restarted={outcome.restarted} "
          f"replayed={outcome.replayed} usable after {outcome.usable:.2f}s")

    assert outcome.status in case.expect, outcome.feedback
    if case.restarted != "any":
        assert outcome.restarted == (case.restarted == "yes"), outcome.feedback
    assert outcome.state_kept, "the branch lost its state"
    assert outcome.usable < case.timeout + 15
    assert outcome.after_stop == [], "processes survived the kernel"
    if name != "escape_group":  # the daemon is meant to live until the kernel stops
        assert outcome.leftovers == [], "processes outlived the block"
    if outcome.restarted:
        assert outcome.replayed == 1 and "1 earlier block was re-run" in outcome.feedback

    feedback = outcome.feedback
    if name.startswith("net_"):
        assert "CONNECTED" not in feedback and "blocked" in feedback
        assert float(feedback.split(" in ")[-1].rstrip("s")) < 1  # fails at once
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's port
    if name == "write_outside":
        assert escaped_files() == []
        assert f"wrote /{ESCAPE}" not in feedback and f"wrote /usr/{ESCAPE}" not in feedback
    if name == "read_secrets":
        path, content = secret_key
        assert content not in feedback
        assert f"id_qwq_test_{TOKEN}" not in feedback  # not even its name
        assert f"{os.path.join(os.getcwd(), '*')} -> []" in feedback  # notebook dir hidden
        assert "API_KEY" not in feedback and "QWQ_TEST_HOST_SECRET" not in feedback
    if name == "kill_parent":
        assert "sent" not in feedback.replace("kill(1) sent", "")
    if name == "memory_bomb":
        assert "MemoryError" in feedback
    if name == "big_file":
        assert "File too large" in feedback or "EFBIG" in feedback
    if name == "gigabyte_output" and outcome.status != "crashed":
        # Capped by us, or the kernel's own buffering hit its memory limit first (it then logs a
        # MemoryError and goes on): contained either way, and the branch kept its state.
        assert "output truncated" in feedback or "MemoryError" in feedback
    if name == "segfault":
        assert "SIGSEGV" in feedback


# -- properties of one kernel ------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_connection_file_and_private_dir_are_owner_only():
    kernel = Subkernel()
    try:
        await kernel.start()
        assert kernel.sandboxed
        private = os.path.dirname(kernel.connection_file)
        assert stat.S_IMODE(os.stat(kernel.connection_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(private).st_mode) & 0o077 == 0  # jupyter_client adds +t
        seen = await kernel.execute(
            "import os, stat\nf = [a for a in os.sys.argv if a.endswith('.json')][0]\n"
            "print(oct(stat.S_IMODE(os.stat(f).st_mode)), os.stat(f).st_uid == os.getuid(),"
            " sorted(os.listdir(os.path.dirname(f))))", timeout=10)
        assert seen.feedback() == "0o600 True ['connection.json', 'ipc', 'work']"
    finally:
        await kernel.shutdown()


@pytest.mark.timeout(60)
async def test_replay_restores_state_and_skips_the_failing_block():
    kernel = Subkernel(memory_limit=2 * GiB)
    try:
        await kernel.start()
        await kernel.execute("import math\nx = 41", timeout=10)
        await kernel.execute("def f(): return x + 1", timeout=10)
        await kernel.execute("undefined_name", timeout=10)  # failed: not replayed
        crash = "open('crash-count', 'a').write('x')\nimport os\nos._exit(1)"
        result = await kernel.execute(crash, timeout=10)
        assert (result.status, result.restarted, result.replayed) == ("crashed", True, 2)
        assert "2 earlier blocks were re-run" in result.feedback()
        after = await kernel.execute("print(f(), math.pi > 3, open('crash-count').read())", 10)
        assert after.feedback() == "42 True x"  # the crashing block ran exactly once
    finally:
        await kernel.shutdown()


@pytest.mark.timeout(60)
async def test_limits_are_configurable_and_shared_dirs_are_read_only(tmp_path, monkeypatch):
    shared = tmp_path / "data"
    shared.mkdir()
    (shared / "input.txt").write_text("shared content")
    os.chmod(tmp_path, 0o755)
    monkeypatch.setenv("QWQ_TEST_HOST_SECRET", "hunter2")
    kernel = Subkernel(memory_limit=3 * GiB, cpu_limit=77, max_processes=40,
                       max_file_size=MiB, shared_dirs=[str(shared)])
    try:
        await kernel.start()
        code = (
            "import resource, os\n"
            "print([resource.getrlimit(getattr(resource, n))[0] for n in "
            "('RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_NPROC', 'RLIMIT_FSIZE')])\n"
            f"print(open({str(shared / 'input.txt')!r}).read())\n"
            f"try: open({str(shared / 'new.txt')!r}, 'w')\n"
            "except OSError as e: print(type(e).__name__)\n"
            "print('QWQ_TEST_HOST_SECRET' in os.environ)"
        )
        lines = (await kernel.execute(code, timeout=10)).feedback().splitlines()
        assert lines == [f"[{3 * GiB}, 77, 40, {MiB}]", "shared content",
                         "OSError", "False"]
        assert not (shared / "new.txt").exists()
    finally:
        await kernel.shutdown()


@pytest.mark.timeout(60)
async def test_sandbox_can_be_switched_off():
    kernel = Subkernel(sandbox=False)
    try:
        await kernel.start()
        assert not kernel.sandboxed
        seen = await kernel.execute(f"import os; print(os.path.exists({os.getcwd()!r}))", 10)
        assert seen.feedback() == "True"  # unconfined: the notebook's directory is visible
    finally:
        await kernel.shutdown()


@module_loop
@pytest.mark.timeout(60)
async def test_branches_cannot_see_or_signal_each_other(pool):
    first, second = await asyncio.gather(pool.acquire(), pool.acquire())
    try:
        code = "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
        seen = (await first.execute(code, timeout=10)).feedback()
        assert str(second.pid) not in seen.strip("[]").split(", ")
        hit = await first.execute(f"import os\ntry: os.kill({second.pid}, 9)\n"
                                  "except OSError as e: print(type(e).__name__)", timeout=10)
        assert hit.feedback() in ("PermissionError", "ProcessLookupError")
        assert (await second.execute("print('alive')", timeout=10)).feedback() == "alive"
        assert kernel_processes(second) == {second.pid}
    finally:
        await asyncio.gather(pool.release(first), pool.release(second))
