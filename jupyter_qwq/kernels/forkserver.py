"""Sandboxed kernels in milliseconds: the owner's side of the fork server (_forkserver.py).

Starting a kernel the usual way costs an interpreter start plus importing ipykernel (about a
second, more on a loaded machine). The fork server pays that once per process: it imports
ipykernel and the `preload` modules, then forks one fresh kernel per request, which enters the
same sandbox (kernels/_launch.py) after the fork and runs ipykernel in-process, speaking the
Jupyter protocol over its connection file as any kernel does. The provisioner (provisioner.py)
uses it through `ForkedKernel`, a stand-in for the Popen that jupyter_client's local provisioner
drives (poll, wait, signals).

One server per process (and interpreter, and preload list), started at the first forked kernel
through jupyter_qwq._processes, which stops it with everything else; it ends by itself when its
owner does, and kills the kernels it forked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from .. import _processes

__all__ = ["PRELOAD", "ForkServer", "ForkServerError", "ForkedKernel", "fork_server", "servers"]

log = logging.getLogger(__name__)

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_forkserver.py")
PRELOAD = ("numpy", "sympy")  # imported once in the server, free in every kernel
START_TIMEOUT = 120.0  # seconds for the server to import everything (a loaded machine is slow)
REPLY_TIMEOUT = 30.0  # seconds for the server to fork a kernel and say its pid


class ForkServerError(RuntimeError):
    """The fork server cannot start or fork here; kernels are launched the usual way."""


class ForkedKernel:
    """A kernel forked by the fork server, with the part of Popen's interface that
    jupyter_client's local provisioner uses. The server (its parent) reaps it and sends its
    exit code over the connection; closing the connection kills its process group."""

    stdin = stdout = stderr = None
    forked = True

    def __init__(self, connection: socket.socket, pid: int, args: list[str]) -> None:
        self._connection = connection
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._connection.fileno() >= 0:
            try:
                message = self._connection.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except OSError:
                message = b""
            if message:
                self.returncode = int(json.loads(message)["exit"])
            else:  # the server is gone; the kernel dies with it (parent-death signal)
                self._connection.close()
        if self.returncode is None and self._connection.fileno() < 0 and not _processes.alive(self.pid):
            self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    async def exited(self, timeout: float) -> int | None:
        """Wait (at most `timeout` seconds) for the server to say the kernel ended, woken by its
        message rather than polling; the exit code, or None if it still runs."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while self.poll() is None and (remaining := deadline - time.monotonic()) > 0:
            if self._connection.fileno() < 0:  # no server to tell us: look now and then
                await asyncio.sleep(min(0.05, remaining))
                continue
            message = loop.create_future()
            fd = self._connection.fileno()
            loop.add_reader(fd, lambda: message.done() or message.set_result(None))
            try:
                await asyncio.wait_for(message, remaining)
            except TimeoutError:
                pass
            finally:
                loop.remove_reader(fd)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # once reaped, the pid may be someone else's
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Let go of the kernel: the server kills its process group if it still runs."""
        self._connection.close()


class ForkServer:
    """A running fork server of this process."""

    def __init__(self, preload: tuple[str, ...], env: dict[str, str]) -> None:
        self.preload = preload
        self.dir = tempfile.mkdtemp(prefix="jupyter_qwq-forkserver-")  # 0700
        self.socket_path = os.path.join(self.dir, "socket")
        self.log_path = os.path.join(self.dir, "server.log")
        with open(self.log_path, "wb") as log_file:
            self.proc = _processes.spawn([sys.executable, SERVER, self.socket_path,
                                          str(os.getpid()), *preload],
                                         kind="forkserver", log=log_file, env=env, cwd="/")
        directory = self.dir
        _processes.own(self.proc.pid, "forkserver",
                       cleanup=lambda: shutil.rmtree(directory, ignore_errors=True))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    async def started(self) -> None:
        """Wait until the server listens (it is importing ipykernel and the preloads)."""
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.socket_path):
            if not self.running:
                raise ForkServerError(f"the fork server ended at start ({self._log_tail()})")
            if time.monotonic() >= deadline:
                self.stop()
                raise ForkServerError(f"the fork server did not start within {START_TIMEOUT:g} s")
            await asyncio.sleep(0.02)

    def fork(self, argv: list[str], env: dict[str, str], cwd: str, sandbox: dict[str, Any] | None,
             stdout: int, stderr: int) -> ForkedKernel:
        """Fork a kernel that runs `argv` (``python -m ipykernel_launcher ...``) in `sandbox`
        (the launcher's config; None: unconfined, in `cwd`), its output to the two fds."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            connection.settimeout(REPLY_TIMEOUT)
            connection.connect(self.socket_path)
            request = {"argv": argv, "env": env, "cwd": cwd, "sandbox": sandbox}
            socket.send_fds(connection, [json.dumps(request).encode()], [stdout, stderr])
            reply = connection.recv(4096)
            if not reply:
                raise ForkServerError(f"the fork server stopped ({self._log_tail()})")
            answer = json.loads(reply)
            if "pid" not in answer:
                raise ForkServerError(f"the fork server could not fork: {answer.get('error')}")
        except (OSError, ValueError) as error:
            connection.close()
            raise ForkServerError(f"the fork server did not answer ({error})") from error
        except BaseException:
            connection.close()
            raise
        connection.settimeout(None)
        return ForkedKernel(connection, int(answer["pid"]), argv)

    def stop(self) -> None:
        _processes.stop(self.proc.pid, 2.0)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else "no output"


_servers: dict[tuple[int, tuple[str, ...]], ForkServer] = {}
_starting: dict[tuple[int, tuple[str, ...]], asyncio.Future[ForkServer]] = {}


def servers() -> list[ForkServer]:
    """The fork servers this process started that still run."""
    return [s for (pid, _), s in _servers.items() if pid == os.getpid() and s.running]


async def fork_server(preload: tuple[str, ...], env: dict[str, str]) -> ForkServer:
    """This process's running fork server for `preload`, started (with `env`) if need be."""
    key = (os.getpid(), tuple(preload))
    server = _servers.get(key)
    if server is not None and server.running:
        return server
    starting = _starting.get(key)
    if starting is None or starting.get_loop() is not asyncio.get_running_loop():
        starting = _starting[key] = asyncio.ensure_future(_start(key, env))
    try:
        return await asyncio.shield(starting)
    finally:
        if starting.done():
            _starting.pop(key, None)


async def _start(key: tuple[int, tuple[str, ...]], env: dict[str, str]) -> ForkServer:
    server = ForkServer(key[1], env)
    await server.started()
    _servers[key] = server
    return server
