"""A notebook on the real embedded default: %qwq server, %%solve, and no orphan after a restart
or a crash."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from jupyter_qwq.session import MIME_TYPE

from processes import alive, wait_until

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(900)]

SERVER_PID = "from jupyter_qwq.engines import runtime\nprint(runtime.running_servers()[0].pid)"


@contextmanager
def notebook_kernel(tmp_path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A kernel as a notebook front-end has one: started, connected, and shut down at the end."""
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield km, client
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def run(client, code: str, timeout: float = 600) -> dict:
    """Execute `code`; collect stdout, stderr and rich outputs like a front-end would."""
    outputs = {"stdout": "", "stderr": "", "data": [], "error": None}

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            outputs[content["name"]] += content["text"]
        elif kind in ("display_data", "execute_result", "update_display_data"):
            outputs["data"].append(content["data"])
        elif kind == "error":
            outputs["error"] = content["ename"]

    client.execute_interactive(code, output_hook=hook, timeout=timeout)
    return outputs


def test_server_magics_solve_and_no_orphans_after_restart(tmp_path):
    with notebook_kernel(tmp_path) as (km, client):
        run(client, "%load_ext jupyter_qwq")
        status = run(client, "%qwq server status")["stdout"]
        assert "no managed server is running" in status and "llamacpp" in status

        started = run(client, "%qwq server start")["stdout"]
        assert "llamacpp serving" in started and "http://127.0.0.1:" in started
        status = run(client, "%qwq server status")["stdout"]
        for word in ("engine  llamacpp", "url     http://127.0.0.1:", "uptime", "device  CPU"):
            assert word in status
        server_pid = int(run(client, SERVER_PID)["stdout"])
        assert alive(server_pid)

        solved = run(client, "%%solve --branches 2 --rounds 1 --max-tokens 200 --seed 3 --out s\n"
                             "What is 2 to the power 10? Use Python.")
        assert solved["error"] is None, solved["stderr"]
        record = next(d for d in solved["data"] if MIME_TYPE in d)[MIME_TYPE]
        assert record["engine"]["kind"] == "llamacpp" and len(record["branches"]) == 2
        assert all(b["completion_tokens"] > 0 for b in record["branches"] if b["status"] != "stopped")
        # The same server served the solve: it persists across cells.
        assert run(client, SERVER_PID)["stdout"].strip() == str(server_pid)
        logs = run(client, "%qwq server logs 3")["stdout"]
        assert logs.startswith("== ") and len(logs.splitlines()) >= 2

        kernels = json.loads(run(client, "import jupyter_qwq, json\n"
                                         "print(json.dumps([k.pid for k in jupyter_qwq._workbench.kernels.kernels]))")
                             ["stdout"])
        km.restart_kernel(now=False)
        client.wait_for_ready(timeout=60)
        assert wait_until(lambda: not alive(server_pid)), "the llama.cpp server outlived its kernel"
        assert wait_until(lambda: not any(alive(p) for p in kernels)), "subkernels outlived their kernel"


def test_leftovers_of_a_crashed_kernel_are_cleaned_up_at_the_next_load(tmp_path):
    with notebook_kernel(tmp_path) as (km, client):
        run(client, "%load_ext jupyter_qwq\n%qwq server start")
        server_pid = int(run(client, SERVER_PID)["stdout"])
        os.kill(km.provisioner.process.pid, signal.SIGKILL)  # a crash: no atexit runs
        assert not wait_until(lambda: not alive(server_pid), timeout=1.0), \
            "the server should survive a crash until the next load cleans up"

    with notebook_kernel(tmp_path) as (_, client):
        run(client, "%load_ext jupyter_qwq")
        assert wait_until(lambda: not alive(server_pid)), \
            "the crashed kernel's server was not cleaned up at the next load"
