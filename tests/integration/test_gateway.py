"""Branches' kernels on a real Jupyter Kernel Gateway (jupyter_kernel_gateway on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from jupyter_qwq import async_solve
from jupyter_qwq.exceptions import KernelError
from jupyter_qwq.session import BranchStatus

from scripted_server import Reply, branch_and_round, code_then_box, last_output

pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    """A kernel gateway of its own, stopped (its whole process group) when the tests end."""
    port = free_port()
    log = (tmp_path_factory.mktemp("gateway") / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1", "--JupyterWebsocketPersonality.list_kernels=True",
         f"--KernelGatewayApp.port={port}"], stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("the kernel gateway did not start: " + open(log.name).read()[-2000:])
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        log.close()


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
