"""Branches' kernels on a real Jupyter Kernel Gateway (jupyter_kernel_gateway on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import alive, settled, wait_until
from scripted_server import Reply, branch_and_round, code_then_box, last_output

from jupyter_qwq import Solving, async_solve
from jupyter_qwq.exceptions import KernelError
from jupyter_qwq.session import BranchStatus, Session, SolveStatus
from jupyter_qwq.views.html import session_html

pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(log_dir, port: int = 0, token: str = "") -> tuple[str, subprocess.Popen]:
    """A real kernel gateway on 127.0.0.1 in a process group of its own: (its URL, its process).
    With `token`, it answers only requests that carry it."""
    port = port or free_port()
    log = (log_dir / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1", "--JupyterWebsocketPersonality.list_kernels=True",
         f"--KernelGatewayApp.port={port}", f"--KernelGatewayApp.auth_token={token}"],
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api", timeout=2).status_code in (200, 401):
                return url, process
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_gateway(process)
    pytest.fail("the kernel gateway did not start: " + (log_dir / "gateway.log").read_text()[-2000:])


def stop_gateway(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    """A kernel gateway of its own, stopped (its whole process group) when the tests end."""
    url, process = start_gateway(tmp_path_factory.mktemp("gateway"))
    try:
        yield url
    finally:
        stop_gateway(process)


def kernels_on(url: str) -> list:
    return httpx.get(f"{url}/api/kernels", timeout=5).json()


async def test_code_runs_on_the_gateway_and_its_kernels_are_gone_after(scripted, gateway):
    server = scripted(code_then_box)
    session = await async_solve("What is 6 times 7?", **server.options(branches=2, kernel_gateway=gateway))
    assert session.answer == "42"
    assert [b.kernel for b in session.branches] == [f"gateway {gateway}"] * 2
    assert all(b.steps[1].outputs == [{"output_type": "stream", "name": "stdout", "text": "42\n"}]
               for b in session.branches)
    assert kernels_on(gateway) == []


HANGS = "while True:\n    pass"
IGNORES_INTERRUPTS = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"


@pytest.mark.parametrize("block", [HANGS, IGNORES_INTERRUPTS], ids=["interrupted", "restarted"])
async def test_a_gateway_kernel_keeps_its_state_through_a_block_that_hangs(scripted, gateway, block):
    """Interrupted through the gateway's REST API; one that ignores it restarts, and the blocks
    that had succeeded are replayed so `x` is still there."""
    def script(body):
        _, round_ = branch_and_round(body)
        if round_ == 1:
            return Reply("```python\nx = 5\nprint('set')\n```")
        if round_ == 2:
            return Reply(f"```python\n{block}\n```")
        if round_ == 3:
            return Reply("```python\nprint(x * 2)\n```")
        return Reply(f"\\boxed{{{last_output(body)}}}")

    server = scripted(script)
    session = await async_solve("Double x.", **server.options(branches=1, rounds=3, code_timeout=3,
                                                              kernel_gateway=gateway))
    code = [s for s in session.branches[0].steps if s.kind == "code"]
    assert [s.execution for s in code] == ["ok", "timeout", "ok"]
    assert session.answer == "10"
    assert kernels_on(gateway) == []


async def test_an_unreachable_gateway_fails_the_branches_with_one_clear_line(scripted):
    server = scripted(code_then_box)
    with pytest.raises(KernelError) as failed:
        await async_solve("What is 6 times 7?", **server.options(branches=2, kernel_gateway="http://127.0.0.1:9"))
    assert str(failed.value) == ("No kernel could be started on the gateway at http://127.0.0.1:9 (nothing "
                                 "answers there). Start one (jupyter kernelgateway "
                                 "--KernelGatewayApp.port=8888), or check --kernel-gateway.")
    session = failed.value.session  # nothing is lost: the record comes with the error
    assert session.branches[0].status == BranchStatus.FAILED and session.branches[0].error == str(failed.value)
    assert session.branches[0].steps[0].text.startswith("Let me compute")


SIX_SEVENS = "Six sevens are \\boxed{42}."


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a gateway's kernels: each in a session of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except OSError:
            continue  # it ended while we looked
    return found


def router_threads() -> list[threading.Thread]:
    """The gateway client's websocket readers still running (one per connected kernel)."""
    return [t for t in threading.enumerate()
            if getattr(getattr(t, "_target", None), "__name__", "") == "_route_responses"]


def sleeping_block(mark: Path) -> str:
    """A code block that says it runs (the file `mark`, and a line of output), then sleeps."""
    return (f"```python\nimport pathlib, time\npathlib.Path({str(mark)!r}).touch()\n"
            "print('started', flush=True)\ntime.sleep(60)\n```")


def running(marks: Path, *branches: int) -> bool:
    return all((marks / f"running-{b}").exists() for b in branches)


async def test_a_gateway_that_dies_mid_solve_fails_only_the_branches_that_needed_it(scripted, tmp_path):
    """Six branches (2 and 5 chain-of-thought): 0 has answered, 1 and 3 are running code that
    sleeps, 4 is still writing when the gateway is killed. The solve ends on its own; 1, 3 and 4
    fail saying what happened; 0, 2 and 5 keep their answers, and the vote is theirs."""
    url, process = start_gateway(tmp_path)
    killed = threading.Event()

    def script(body):
        branch, round_ = branch_and_round(body)
        if branch in (2, 5):
            return Reply(SIX_SEVENS)
        if round_ == 2:
            return Reply(f"So \\boxed{{{last_output(body)}}}.")
        if branch == 0:
            return Reply("```python\nprint(6 * 7)\n```")
        if branch == 4:
            killed.wait(60)  # still writing its first block when the gateway goes
        return Reply("Let me take my time.\n" + sleeping_block(tmp_path / f"running-{branch}"))

    server = scripted(script)

    def answered(branch: int, round_: int) -> bool:
        return any(s.outcome == "completed" and branch_and_round(s.body) == (branch, round_)
                   for s in server.streams)

    async def kill_when_code_runs() -> tuple[float, list[int]]:
        await settled(lambda: running(tmp_path, 1, 3) and answered(0, 2) and answered(2, 1)
                      and answered(5, 1), timeout=60)
        kernels = children_of(process.pid)
        stop_gateway(process, signal.SIGKILL)
        killed.set()
        return time.monotonic(), kernels

    before = set(router_threads())
    session, (killed_at, kernels) = await asyncio.gather(
        async_solve("What is 6 times 7?", **server.options(branches=6, prompts="mixed", stop="none",
                                                           code_timeout=40, kernel_gateway=url)),
        kill_when_code_runs())
    assert len(kernels) >= 2  # 1 and 3 (and 4's warm one, once started) ran on the gateway
    assert time.monotonic() - killed_at < 20  # ended on its own, long before the blocks' timeout

    assert session.status == SolveStatus.DONE and not session.error
    assert session.answer == "42"
    assert [(t.answer, t.branches) for t in session.vote.tally] == [("42", [0, 2, 5])]
    statuses = {b.index: b.status for b in session.branches}
    assert statuses == {0: BranchStatus.ANSWERED, 1: BranchStatus.FAILED, 2: BranchStatus.ANSWERED,
                        3: BranchStatus.FAILED, 4: BranchStatus.FAILED, 5: BranchStatus.ANSWERED}
    for index in (1, 3):
        branch = session.branches[index]
        assert branch.stop_reason == "error"
        assert branch.error.startswith(f"The kernel gateway at {url} stopped answering (")
        assert "Restart the gateway" in branch.error  # what to do
        (code,) = [s for s in branch.steps if s.kind == "code"]  # the block it was running is kept,
        assert code.execution == "lost"  # with what it printed before the gateway went
        assert code.outputs == [{"output_type": "stream", "name": "stdout", "text": "started\n"}]
    late = session.branches[4]  # its warm kernel went with the gateway; a fresh one cannot start
    assert late.stop_reason == "error" and late.error.startswith(
        f"No kernel could be started on the gateway at {url} (")
    assert [s.execution for s in late.steps if s.kind == "code"] == ["no-kernel"]

    record = Session.from_json(session.to_json())  # nothing lost from the saved record
    assert record.to_json() == session.to_json()
    html = session_html(session)
    assert html.count(f"The kernel gateway at {url} stopped answering") == 2
    assert html.count(f"No kernel could be started on the gateway at {url}") == 1

    assert wait_until(lambda: not any(alive(pid) for pid in kernels), timeout=15)
    assert set(router_threads()) <= before


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_qwq.cli", "solve", *args, "--seed", "0"],
                          capture_output=True, text=True, timeout=100, check=False,
                          env={**os.environ, **(env or {})})


def test_a_gateway_that_asks_for_a_token_gets_it_on_every_request(scripted, tmp_path):
    url, process = start_gateway(tmp_path, token="s3cret")
    try:
        server = scripted(code_then_box)
        flags = ("What is 6 times 7?", "--endpoint", server.base_url, "--branches", "2", "--kernel-gateway", url)
        refused = run_cli(*flags)
        assert refused.returncode == 1 and "it answered 401" in refused.stderr
        result = run_cli(*flags, "--json", env={"JUPYTER_GATEWAY_AUTH_TOKEN": "s3cret"})
        assert result.returncode == 0, result.stderr
        record = Session.from_json(result.stdout)
        assert record.answer == "42"  # the code ran there: its output came back over the websocket
        assert all(b.steps[1].outputs[0]["text"] == "42\n" for b in record.branches)
        assert "s3cret" not in result.stdout + result.stderr
        assert httpx.get(f"{url}/api/kernels", headers={"Authorization": "token s3cret"}, timeout=5).json() == []
    finally:
        stop_gateway(process)


UNREACHABLE = "http://127.0.0.1:9"
NO_KERNEL = (f"No kernel could be started on the gateway at {UNREACHABLE} (nothing answers there). Start "
             "one (jupyter kernelgateway --KernelGatewayApp.port=8888), or check --kernel-gateway.")


def test_an_unreachable_gateway_is_one_line_on_the_command_line_and_the_record_is_printed(scripted):
    server = scripted(code_then_box)
    result = run_cli("What is 6 times 7?", "--endpoint", server.base_url, "--branches", "3",
                     "--kernel-gateway", UNREACHABLE, "--json")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"jupyter-qwq solve: error: {NO_KERNEL}"]  # once, not per branch
    record = Session.from_json(result.stdout)
    assert record.problem == "What is 6 times 7?" and record.status == SolveStatus.FAILED
    assert [b.error for b in record.branches] == [NO_KERNEL] * 3
    assert all(b.steps[0].text.startswith("Let me compute") for b in record.branches)


def test_with_an_unreachable_gateway_the_branches_without_code_still_answer(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply(SIX_SEVENS) if branch == 2 else code_then_box(body)

    server = scripted(script)
    result = run_cli("What is 6 times 7?", "--endpoint", server.base_url, "--branches", "3",
                     "--prompts", "mixed", "--kernel-gateway", UNREACHABLE)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [f"jupyter-qwq solve: branches 0, 1 failed: {NO_KERNEL}"]
    assert "answer: 42" in result.stdout


def test_an_unreachable_gateway_that_no_branch_needs_says_nothing(scripted):
    server = scripted(lambda body: Reply(SIX_SEVENS))
    result = run_cli("What is 6 times 7?", "--endpoint", server.base_url, "--branches", "3",
                     "--kernel-gateway", UNREACHABLE)
    assert (result.returncode, result.stderr) == (0, "")  # the warm kernels that failed: unseen
    assert "answer: 42" in result.stdout


async def test_a_gateway_that_hangs_mid_solve_costs_its_branches_at_most_the_gateway_timeout(
        scripted, tmp_path):
    """A gateway that accepts connections but never answers (SIGSTOP) cannot hang a branch: its
    two code branches fail once --kernel-gateway-timeout passes, the chain of thought answers."""
    url, process = start_gateway(tmp_path)

    def script(body):
        branch, _ = branch_and_round(body)
        return Reply(SIX_SEVENS if branch == 2 else sleeping_block(tmp_path / f"running-{branch}"))

    server = scripted(script)

    async def hang_when_code_runs() -> tuple[float, list[int]]:
        await settled(lambda: running(tmp_path, 0, 1), timeout=60)
        kernels = children_of(process.pid)
        os.killpg(process.pid, signal.SIGSTOP)
        return time.monotonic(), kernels

    before = set(router_threads())
    try:
        session, (hung_at, kernels) = await asyncio.gather(
            async_solve("What is 6 times 7?", **server.options(branches=3, prompts="mixed", stop="none",
                                                               code_timeout=40, kernel_gateway=url,
                                                               kernel_gateway_timeout=2)),
            hang_when_code_runs())
        ended_after = time.monotonic() - hung_at
    finally:
        stop_gateway(process, signal.SIGKILL)
    assert ended_after < 12  # a check and a DELETE of 2 s each, and closing the websockets
    assert session.answer == "42" and session.status == SolveStatus.DONE
    for branch in session.branches[:2]:
        assert branch.status == BranchStatus.FAILED
        assert f"The kernel gateway at {url} stopped answering (no answer within 2 s)" in branch.error
    assert len(kernels) == 2 and wait_until(lambda: not any(alive(pid) for pid in kernels), timeout=15)
    assert set(router_threads()) <= before


async def test_after_the_gateway_comes_back_the_next_solve_gets_fresh_kernels_there(scripted, tmp_path):
    """Warm kernels left on a gateway that died are not handed to the next solve's branches."""
    url, process = start_gateway(tmp_path)
    server = scripted(code_then_box)
    try:
        async with Solving(**server.options(branches=2, kernel_gateway=url), warm_kernels=2) as solving:
            assert (await solving.solve("What is 6 times 7?")).answer == "42"
            await solving.kernels.ready()  # two kernels are warm on the gateway
            stop_gateway(process, signal.SIGKILL)
            _, process = start_gateway(tmp_path, port=int(url.rsplit(":", 1)[1]))
            session = await solving.solve("What is 6 times 7?")
            assert [b.status for b in session.branches] == [BranchStatus.ANSWERED] * 2
            assert session.answer == "42"
    finally:
        stop_gateway(process)


def test_a_process_that_ends_without_stopping_its_gateway_kernels_exits_and_deletes_them(gateway):
    program = ("import asyncio\nfrom jupyter_qwq.kernels.gateway import GatewaySubkernel\n"
               "async def main():\n"
               f"    kernels = [GatewaySubkernel({gateway!r}) for _ in range(2)]\n"
               "    await asyncio.gather(*(k.start() for k in kernels))\n"
               "    print(sum(k.alive for k in kernels), flush=True)\n"
               "asyncio.run(main())\n")
    started = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        assert started.stdout.readline() == "2\n"  # two kernels run there, and it ends now
        left = time.monotonic()
        assert started.wait(timeout=30) == 0
    finally:
        started.kill()
    assert time.monotonic() - left < 10  # not held up by the websockets' reader threads
    assert kernels_on(gateway) == []  # its exit deleted them
