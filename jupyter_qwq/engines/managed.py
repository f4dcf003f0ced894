"""OpenAI-compatible servers that jupyter_qwq starts, watches and stops itself.

``LlamaCppServer`` (engines/llamacpp.py, the CPU default) and ``VllmServer`` (engines/vllm.py)
share one lifecycle, :class:`ManagedServer`:

- a free port on 127.0.0.1, retried (at most 3 tries) when the port is taken meanwhile;
- its own process group and a log file (never an undrained pipe);
- readiness by polling an HTTP path while watching the process, so a crash fails fast
  with the tail of the log;
- stop = SIGTERM to the group, then SIGKILL after a grace period; also at interpreter exit,
  and through pid files that :func:`cleanup_stale_servers` reads if the owner died hard.

The API key is random per server and passed through the environment, not argv, so other
users of the machine cannot read it from ``ps``.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import signal
import subprocess
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from .. import _processes
from ..exceptions import ServerStartError
from ._server_files import (SERVER_ID_ENV, cleanup_stale_servers, new_log_path, read_from, read_tail,
                            remove_pid_file, server_state_dir, write_pid_file)

__all__ = ["HOST", "ManagedServer", "cleanup_stale_servers", "describe_exit", "pick_free_port",
           "running_servers", "server_state_dir"]

HOST = "127.0.0.1"
MAX_START_ATTEMPTS = 3
_POLL_INTERVAL = 0.25
_ERROR_TAIL_LINES = 20
_PORT_TAKEN = re.compile(r"address already in use|errno 98|eaddrinuse", re.IGNORECASE)

_RUNNING: set[ManagedServer] = set()  # started and not yet stopped


def pick_free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def running_servers() -> list[ManagedServer]:
    """The servers this process started and has not stopped."""
    return [s for s in list(_RUNNING) if s._owner_pid == os.getpid()]


class ManagedServer:
    """A server process this package owns. Subclasses give ``command()`` and readiness."""

    kind: str = "server"
    label: str = "engine"  # how a person names it: "llama.cpp", "vLLM"
    readiness_path: str = "/v1/models"
    default_start_timeout: float = 120.0

    def __init__(
        self,
        model_name: str,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        port_picker: Callable[[], int] = pick_free_port,
    ) -> None:
        self.model_name = model_name
        self.api_key = secrets.token_urlsafe(32)
        self.server_id = secrets.token_hex(8)
        self.returncode: int | None = None
        self._port_picker = port_picker
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawned_at: float | None = None
        self._start_lock = asyncio.Lock()
        self._owner_pid = os.getpid()
        self._log_path = new_log_path(self.kind, self.server_id, log_dir)

    # -- what a subclass provides -------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env[SERVER_ID_ENV] = self.server_id
        env["PYTHONUNBUFFERED"] = "1"  # so the log tail is current when we quote it
        return env

    def start_failure_hint(self, log_tail: str) -> str:
        return f"Read the full log at {self._log_path}."

    def exit_hint(self, status: int) -> str:
        """What to do about the way the server died ('' when its log says enough)."""
        return ""

    def _is_our_server(self, response: httpx.Response) -> bool:
        """Whether a 200 on the readiness path came from our process, not a port squatter."""
        return True

    # -- state ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = self._port_picker()
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def pgid(self) -> int | None:
        return self.pid  # start_new_session=True makes the server its group's leader

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def uptime(self) -> float:
        if not self.alive or self._spawned_at is None:
            return 0.0
        return time.monotonic() - self._spawned_at

    @property
    def log_path(self) -> Path:
        return self._log_path

    def log_tail(self, lines: int = 40) -> str:
        return read_tail(self._log_path, lines)

    def exit_status(self) -> int | None:
        """The process's exit status (negative: the signal that ended it); None while it runs."""
        if self._proc is not None:
            return self._proc.poll()
        return self.returncode

    def crash_report(self, wait: float = 2.0) -> str | None:
        """How the server died, with its log's tail; None if it is still running.

        A broken stream is often seen a moment before the process is gone: wait up to `wait`
        seconds for it to exit before deciding it did not.
        """
        deadline = time.monotonic() + wait
        while (status := self.exit_status()) is None and self._proc is not None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        if status is None:
            return None
        return (
            f"The {self.label} server {describe_exit(status)}. This is the engine failing, not "
            f"your code or your network. Its log is {self._log_path}.\n{self._quoted_tail()}"
            + (f"\n{hint}" if (hint := self.exit_hint(status)) else "")
        )

    def __repr__(self) -> str:
        state = f"alive at {self.base_url}" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.model_name!r} {state}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Start the server and wait until it answers; no-op if it is already running.

        Raises ServerStartError (with the log's tail) if the process exits or is not ready
        within ``timeout`` seconds; nothing is left running in that case.
        """
        async with self._start_lock:  # concurrent callers share one start
            if not self.alive:
                await self._start(timeout)

    async def _start(self, timeout: float | None) -> None:
        self.stop(grace=2.0)  # it may have died on its own: clear what it left behind
        timeout = self.default_start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            for attempt in range(1, MAX_START_ATTEMPTS + 1):
                if attempt > 1:
                    self._port = self._port_picker()
                log_offset = self._spawn()
                if await self._wait_ready(deadline, timeout):
                    return
                self.stop(grace=2.0)  # reaps it, and any children it left
                if not _PORT_TAKEN.search(read_from(self._log_path, log_offset)):
                    raise self._exited_error()
            raise self._ports_exhausted_error()
        except BaseException:
            self.stop(grace=2.0)  # timeout, error or cancellation: leave nothing behind
            raise

    def stop(self, grace: float = 10.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Synchronous (it also runs from atexit), idempotent, and safe if never started.
        """
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is None:
            return
        try:
            _processes.stop(proc.pid, grace)
        finally:
            self.returncode = proc.returncode
            self._spawned_at = None
            remove_pid_file(self.server_id)

    async def __aenter__(self) -> ManagedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals ------------------------------------------------------------------------

    def _spawn(self) -> int:
        """Launch one attempt; return where its output starts in the log."""
        cmd = self.command()
        log_file = self._open_log()
        with log_file:
            offset = log_file.tell()
            log_file.write(f"--- jupyter_qwq: {shlex.join(cmd)}\n".encode())
            log_file.flush()
            try:
                self._proc = _processes.spawn(cmd, kind="server", log=log_file, env=self.environment())
            except OSError as exc:
                raise ServerStartError(
                    f"Could not run {cmd[0]!r} to start the {self.label} server: {exc}. "
                    + self.start_failure_hint("")
                ) from exc
        self._spawned_at = time.monotonic()
        _RUNNING.add(self)
        write_pid_file(self)
        _processes.own(self._proc.pid, "server", cleanup=self._forget)
        return offset

    def _forget(self) -> None:
        """When the process owner stops the group (e.g. at exit): no pid file, not running."""
        _RUNNING.discard(self)
        remove_pid_file(self.server_id)

    def _open_log(self):
        try:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # no writable log dir (read-only home): fall back to a temp dir
            tmp = tempfile.mkdtemp(prefix=f"jupyter_qwq-{self.kind}-")
            self._log_path = Path(tmp) / "server.log"
        return open(self._log_path, "ab")

    async def _wait_ready(self, deadline: float, timeout: float) -> bool:
        """True once the server answers 200; False if the process exited first."""
        assert self._proc is not None
        url = self.root_url + self.readiness_path
        headers = {"Authorization": f"Bearer {self.api_key}"}
        # trust_env=False: an HTTP(S)_PROXY from the environment must not see 127.0.0.1
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            while True:
                if self._proc.poll() is not None:
                    return False
                if await self._probe(client, url, headers):
                    return True
                if time.monotonic() >= deadline:
                    raise self._timeout_error(url, timeout)
                await asyncio.sleep(_POLL_INTERVAL)

    async def _probe(self, client: httpx.AsyncClient, url: str, headers: dict) -> bool:
        try:
            response = await client.get(url, headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and self._is_our_server(response)

    def _quoted_tail(self) -> str:
        tail = self.log_tail(_ERROR_TAIL_LINES)
        return f"--- last lines of {self._log_path} ---\n{tail}\n---"

    def _exited_error(self) -> ServerStartError:
        tail = self.log_tail(_ERROR_TAIL_LINES)
        return ServerStartError(
            f"The {self.label} server {describe_exit(self.returncode)} before it was ready.\n"
            f"{self._quoted_tail()}\n{self.start_failure_hint(tail)}"
        )

    def _ports_exhausted_error(self) -> ServerStartError:
        return ServerStartError(
            f"The {self.label} server found its port already in use {MAX_START_ATTEMPTS} times "
            f"in a row; something else keeps taking ports on {HOST}. Try again, or stop the "
            f"other servers.\n{self._quoted_tail()}"
        )

    def _timeout_error(self, url: str, timeout: float) -> ServerStartError:
        return ServerStartError(
            f"The {self.label} server did not answer {url} within {timeout:.0f} s and was "
            f"stopped. If the model is large or the disk slow, pass a longer start timeout.\n"
            f"{self._quoted_tail()}"
        )


def describe_exit(status: int | None) -> str:
    """'crashed with SIGSEGV (signal 11)', 'exited with status 1', for an exit status."""
    if status is None:
        return "stopped"
    if status < 0:
        try:
            name = f"{signal.Signals(-status).name} (signal {-status})"
        except ValueError:
            name = f"signal {-status}"
        if -status == signal.SIGKILL:
            return f"was killed with {name} (if nobody stopped it, the system likely ran out of memory: see dmesg)"
        if -status in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            return f"was stopped with {name}"
        if -status == signal.SIGILL:
            return f"crashed with {name}: it ran an instruction this CPU does not have"
        return f"crashed with {name}"
    return f"exited with status {status}"



