"""Subkernels: one isolated, stateful ipykernel per reasoning branch.

Code a branch writes runs in that branch's own kernel process, never in the calling process.
Each kernel gets its own process group (jupyter_client's local provisioner launches with
``start_new_session=True``), ``JPY_PARENT_PID`` so it exits if its parent dies, a private
0700 temporary directory holding its connection file and working directory, and the inline
matplotlib backend so plots come back as ``image/png`` display data.

By default each kernel is also sandboxed (see jupyter_qwq.sandbox and SECURITY.md): no network,
a private read-only view of the filesystem, a uid or user namespace of its own, and limits on
memory, CPU time, processes and file size. When a kernel has to be restarted (a timeout it
ignored, a crash), the blocks that had succeeded are replayed so the branch keeps its state.

    async with KernelPool() as pool:
        await pool.prestart(4)              # warm up while the model writes its first tokens
        kernel = await pool.acquire()
        result = await kernel.execute("x = 41\\nprint(x + 1)", timeout=10)
        result.feedback()                   # '42'
        await pool.release(kernel)
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from queue import Empty
from typing import Any, BinaryIO

from . import sandbox as _sandbox
from .exceptions import KernelError

__all__ = ["Execution", "Subkernel", "KernelPool"]

log = logging.getLogger(__name__)

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
MAX_OUTPUT_BYTES = 1_000_000
LIVENESS_INTERVAL = 0.2  # seconds between checks that the kernel process still runs
INTERRUPT_GRACE = 1.0  # seconds a kernel gets to become idle after SIGINT before a restart
SHUTDOWN_WAIT = 2.0  # seconds for a polite shutdown before SIGTERM, then SIGKILL
TRACEBACK_LINES = 8
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


# --------------------------------------------------------------------------------------------
# Execution result
# --------------------------------------------------------------------------------------------


@dataclass
class Execution:
    """What one piece of code did in a subkernel."""

    status: str  # "ok" | "error" | "timeout" | "crashed"
    outputs: list[dict[str, Any]] = field(default_factory=list)  # nbformat v4 output dicts
    duration: float = 0.0
    restarted: bool = False  # the kernel was restarted afterwards, so its state is gone
    timeout: float = 0.0  # the limit the code ran under
    exit_code: int | None = None  # for "crashed": the process return code (-N: killed by signal N)
    replayed: int = 0  # after a restart: earlier successful blocks re-run to restore the state
    replay_total: int = 0  # how many there were to re-run (replayed < replay_total: some failed)

    def feedback(self, limit: int = 1000) -> str:
        """The plain text the model gets back, at most about `limit` characters."""
        pieces = [_output_text(o) for o in self.outputs if not self._is_our_interrupt(o)]
        note = self._status_note()
        text = _join_blocks([*pieces, note] if note else pieces)
        if not text.strip():
            text = "(no output; use print() to see values)"
        return _shorten(text, limit)

    def _is_our_interrupt(self, output: dict[str, Any]) -> bool:
        # The KeyboardInterrupt we caused on timeout is noise; the timeout note says it better.
        return self.status == "timeout" and output.get("ename") == "KeyboardInterrupt"

    def _status_note(self) -> str:
        seconds = f"{self.timeout:g}"
        if self.status == "timeout" and self.restarted:
            return (
                f"Execution timed out after {seconds} seconds and did not stop when interrupted, "
                f"so {self._restart_note()}"
            )
        if self.status == "timeout":
            return f"Execution timed out after {seconds} seconds and was interrupted."
        if self.status == "crashed":
            return f"The kernel crashed ({_describe_exit(self.exit_code)}); {self._restart_note()}"
        return ""

    def _restart_note(self) -> str:
        blocks = "block was" if self.replayed == 1 else "blocks were"
        if self.replay_total and self.replayed == self.replay_total:
            return (
                f"the kernel was restarted and {self.replayed} earlier {blocks} re-run; the "
                "state they built is back (this block's effects are not)."
            )
        if self.replayed:
            return (
                f"the kernel was restarted and {self.replayed} earlier {blocks} re-run, but "
                f"{self.replay_total - self.replayed} could not be; the state from those was "
                "lost (re-run the missing definitions)."
            )
        return (
            "the kernel was restarted; its state was lost (re-run imports and definitions)."
        )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped unexpectedly"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _output_text(output: dict[str, Any]) -> str:
    kind = output["output_type"]
    if kind == "stream":
        return _strip_ansi(_as_text(output["text"]))
    if kind == "error":
        return _error_text(output)
    data = output.get("data", {})
    if any(mime.startswith("image/") for mime in data):
        return "[image]"
    if "text/plain" in data:
        return _strip_ansi(_as_text(data["text/plain"]))
    return f"[{next(iter(data), 'empty')} output]"


def _error_text(output: dict[str, Any]) -> str:
    """The user's own frame (the last `Cell In[...]` entry) and the error line; library frames
    in between are mostly noise to the model."""
    headline = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    entries = [_strip_ansi(entry).strip("\n") for entry in output.get("traceback", [])]
    cells = [entry for entry in entries if entry.lstrip().startswith("Cell In[")]
    text = cells[-1] if cells else "\n".join(entries)
    lines = [line for line in text.splitlines() if line.strip()][-TRACEBACK_LINES:]
    if not lines or lines[-1].strip() != headline:
        lines.append(headline)
    return "\n".join(lines)


def _as_text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _join_blocks(blocks: list[str]) -> str:
    text = ""
    for block in blocks:
        if text and not text.endswith("\n"):
            text += "\n"
        text += block
    return text.strip("\n")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    cut = len(text) - limit
    return f"{text[:head]}\n... ({cut} characters cut) ...\n{text[-tail:]}"


# --------------------------------------------------------------------------------------------
# iopub messages -> nbformat outputs
# --------------------------------------------------------------------------------------------


def _to_nbformat(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    if msg_type == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if msg_type == "display_data":
        return {
            "output_type": "display_data",
            "data": content["data"],
            "metadata": content.get("metadata", {}),
        }
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "data": content["data"],
            "metadata": content.get("metadata", {}),
            "execution_count": content.get("execution_count"),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": list(content["traceback"]),
        }
    return None  # status, execute_input, comm messages: not outputs


def _size(output: dict[str, Any]) -> int:
    if output["output_type"] == "stream":
        return len(output["text"])
    return sum(len(v) for v in output.get("data", {}).values() if isinstance(v, str))


class _Outputs:
    """Builds the outputs of one execution, keeping at most `max_bytes` characters of them."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: list[dict[str, Any]] = []
        self.size = 0
        self.truncated = False
        self._clear_before_next = False

    @property
    def has_error(self) -> bool:
        return any(o["output_type"] == "error" for o in self.items)

    def add(self, msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "clear_output":
            self._clear_before_next = bool(content.get("wait"))
            if not self._clear_before_next:
                self._clear()
            return
        output = _to_nbformat(msg["msg_type"], content)
        if output is None:
            return
        if self._clear_before_next:
            self._clear()
        if output["output_type"] == "error":
            self.items.append(output)  # always kept: it is what the model needs most
        else:
            self._add_capped(output)

    def result(self) -> list[dict[str, Any]]:
        for output in self.items:
            if output["output_type"] == "stream" and isinstance(output["text"], list):
                output["text"] = "".join(output["text"])
        return self.items

    def _add_capped(self, output: dict[str, Any]) -> None:
        if self.truncated:
            return
        room = self.max_bytes - self.size
        if _size(output) <= room:
            self._append(output)
            return
        if output["output_type"] == "stream" and room > 0:
            self._append({**output, "text": output["text"][:room]})
        self.truncated = True
        marker = f"\n[output truncated: more than {self.max_bytes} characters]\n"
        self._append_stream("stderr", marker)

    def _append(self, output: dict[str, Any]) -> None:
        self.size += _size(output)
        if output["output_type"] == "stream":
            self._append_stream(output["name"], output["text"])
        else:
            self.items.append(output)

    def _append_stream(self, name: str, text: str) -> None:
        # Chunks are kept as a list and joined once in result(): floods of small writes stay linear.
        last = self.items[-1] if self.items else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["text"].append(text)
        else:
            self.items.append({"output_type": "stream", "name": name, "text": [text]})

    def _clear(self) -> None:
        self.items.clear()
        self.size = 0
        self.truncated = False
        self._clear_before_next = False


# --------------------------------------------------------------------------------------------
# Process-group bookkeeping for the atexit fallback
# --------------------------------------------------------------------------------------------

_LIVE_GROUPS: dict[Subkernel, int] = {}  # process group of each kernel's current process
_LIVE_DIRS: dict[Subkernel, str] = {}  # each kernel's private directory
_LIVE_SANDBOXES: dict[Subkernel, _sandbox.Sandbox] = {}  # uid sweeps and cgroups to remove
_atexit_registered = False


def _transport_for(connection_file: str) -> str:
    """IPC sockets next to the connection file, inside the 0700 private directory, so no other
    user can even connect; TCP where IPC is missing or the socket path would be too long."""
    longest_socket_path = len(os.path.splitext(connection_file)[0]) + len("-ipc-5")
    return "ipc" if os.name == "posix" and longest_socket_path < 100 else "tcp"


def _kill_group(pgid: int | None) -> None:
    # Never signal our own group (or init's): that would take the caller down with the kernel.
    if not pgid or pgid <= 1 or not hasattr(os, "killpg") or pgid == os.getpgid(0):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_leftover_kernels() -> None:
    """atexit fallback: synchronous, no event loop needed."""
    for pgid in list(_LIVE_GROUPS.values()):
        _kill_group(pgid)
    for box in list(_LIVE_SANDBOXES.values()):
        box.close()
    _LIVE_SANDBOXES.clear()
    for path in list(_LIVE_DIRS.values()):
        shutil.rmtree(path, ignore_errors=True)
    _LIVE_GROUPS.clear()
    _LIVE_DIRS.clear()


def _register_atexit_once() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_kill_leftover_kernels)
        _atexit_registered = True


_manager_class: Any = None


def _sandboxed_manager() -> Any:
    """AsyncKernelManager whose kernel command goes through the sandbox launcher (built on
    each launch, restarts included)."""
    global _manager_class
    if _manager_class is None:
        from jupyter_client import AsyncKernelManager

        class SandboxedKernelManager(AsyncKernelManager):  # type: ignore[misc]
            qwq_sandbox: Any = None

            def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
                cmd = super().format_kernel_cmd(extra_arguments)
                if self.qwq_sandbox is None:
                    return cmd
                cwd = str((self._launch_args or {}).get("cwd") or os.getcwd())
                return self.qwq_sandbox.wrap(cmd, os.path.realpath(self.connection_file), cwd)

        _manager_class = SandboxedKernelManager
    return _manager_class


# --------------------------------------------------------------------------------------------
# Subkernel
# --------------------------------------------------------------------------------------------


class Subkernel:
    """One ipykernel process with its own state, process group and private directory.

    `sandbox`: contain the kernel (jupyter_qwq.sandbox) when this machine allows it; False
    runs it unconfined (debugging). The limits apply to the sandboxed kernel; None lifts one.
    `shared_dirs`: host directories the sandboxed kernel may read (read-only).
    `replay`: after a restart, re-run the blocks that had succeeded so the state comes back.
    """

    def __init__(
        self,
        kernel_name: str = "python3",
        startup_timeout: float = 60,
        extra_env: dict[str, str] | None = None,
        workdir: str | None = None,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        *,
        sandbox: bool = True,
        memory_limit: int | None = _sandbox.Limits.memory,
        cpu_limit: int | None = _sandbox.Limits.cpu_seconds,
        max_processes: int | None = _sandbox.Limits.max_processes,
        max_file_size: int | None = _sandbox.Limits.max_file_size,
        shared_dirs: list[str] | tuple[str, ...] = (),
        replay: bool = True,
    ) -> None:
        self.kernel_name = kernel_name
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        self.workdir = workdir  # where the private directory is created (default: system temp)
        self.max_output_bytes = max_output_bytes
        self.limits = _sandbox.Limits(
            memory=memory_limit,
            cpu_seconds=cpu_limit,
            max_processes=max_processes,
            max_file_size=max_file_size,
        )
        self.shared_dirs = list(shared_dirs)
        self.replay = replay
        self._want_sandbox = sandbox
        self._sandbox: _sandbox.Sandbox | None = None
        self._history: list[tuple[str, float]] = []  # successful blocks, for replay
        self.restarts = 0
        self._km: Any = None
        self._client: Any = None
        self._private_dir: str | None = None
        self._log: BinaryIO | None = None  # the kernel process's own stdout and stderr
        self._closed = False
        self._lock = asyncio.Lock()  # one execution at a time: iopub is read by one reader

    def __repr__(self) -> str:
        state = "alive" if self.alive else "stopped"
        return f"<Subkernel {self.kernel_name} pid={self.pid} {state}>"

    # -- state -----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Started, connected and not shut down (a crash is noticed at the next execute)."""
        return not self._closed and self._client is not None and self._km.has_kernel

    @property
    def pid(self) -> int | None:
        return getattr(self._km.provisioner, "pid", None) if self._km is not None else None

    @property
    def pgid(self) -> int | None:
        return getattr(self._km.provisioner, "pgid", None) if self._km is not None else None

    @property
    def connection_file(self) -> str | None:
        return self._km.connection_file if self._km is not None else None

    @property
    def cwd(self) -> str | None:
        return os.path.join(self._private_dir, "work") if self._private_dir else None

    @property
    def sandboxed(self) -> bool:
        """Whether this kernel runs inside the sandbox."""
        return self._sandbox is not None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the kernel and wait until it answers; raises KernelError if it cannot."""
        if self._km is not None or self._closed:
            raise KernelError("This subkernel was already started; create a new Subkernel.")
        _register_atexit_once()
        try:
            await self._launch()
        except BaseException as error:
            kernel_log = self._log_tail()
            await self.shutdown()
            if isinstance(error, Exception) and not isinstance(error, KernelError):
                raise KernelError(self._start_failure(error) + kernel_log) from error
            raise

    async def shutdown(self) -> None:
        """Stop the kernel and everything it started, and delete its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stop_client()
            await self._stop_kernel()
        finally:
            _kill_group(_LIVE_GROUPS.pop(self, None))  # children the kernel left behind
            box = _LIVE_SANDBOXES.pop(self, None)
            if box is not None:  # every process of its uid or cgroup, wherever it went
                await asyncio.get_running_loop().run_in_executor(None, box.close)
            _LIVE_DIRS.pop(self, None)
            if self._log is not None:
                self._log.close()
            if self._private_dir:
                shutil.rmtree(self._private_dir, ignore_errors=True)

    async def _launch(self) -> None:
        from jupyter_client import AsyncKernelManager  # imported late: it is slow to import

        self._private_dir = tempfile.mkdtemp(prefix="jupyter_qwq-kernel-", dir=self.workdir)
        _LIVE_DIRS[self] = self._private_dir
        os.mkdir(self.cwd, 0o700)
        connection_file = os.path.join(self._private_dir, "connection.json")
        env = self._kernel_env()
        if self._want_sandbox and _sandbox.available():
            box = _sandbox.Sandbox(self._private_dir, self.limits, self.shared_dirs)
            _LIVE_SANDBOXES[self] = self._sandbox = box
            box.prepare_dirs(self.cwd)
            if _transport_for(box.ipc_prefix + ".json") != "ipc":
                raise KernelError(
                    f"The sandboxed kernel needs Unix sockets, but {box.ipc_prefix!r} is too long "
                    "for one; pass a shorter workdir."
                )
            self._km = _sandboxed_manager()(
                kernel_name=self.kernel_name,
                connection_file=connection_file,
                transport="ipc",
                ip=box.ipc_prefix,
                shutdown_wait_time=SHUTDOWN_WAIT,
                log=log,
            )
            self._km.qwq_sandbox = box
            env = box.env(env)
        else:
            self._km = AsyncKernelManager(
                kernel_name=self.kernel_name,
                connection_file=connection_file,
                transport=_transport_for(connection_file),
                shutdown_wait_time=SHUTDOWN_WAIT,
                log=log,
            )
        self._log = open(os.path.join(self._private_dir, "kernel.log"), "wb")  # noqa: SIM115
        await self._km.start_kernel(
            env=env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=self._log,
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
        )
        self._remember_process_group()
        await self._connect()

    def _kernel_env(self) -> dict[str, str]:
        env = {**os.environ, "MPLBACKEND": INLINE_BACKEND, **self.extra_env}
        env["JPY_PARENT_PID"] = str(os.getpid())
        return env

    def _remember_process_group(self) -> None:
        _LIVE_GROUPS[self] = self.pgid or self.pid or 0

    async def _connect(self) -> None:
        self._client = self._km.client()
        # No stdin channel: input() then raises StdinNotImplementedError instead of hanging.
        self._client.start_channels(stdin=False, hb=False)
        await self._client.wait_for_ready(timeout=self.startup_timeout)

    def _stop_client(self) -> None:
        if self._client is not None:
            self._client.stop_channels()
            self._client = None

    async def _stop_kernel(self) -> None:
        km = self._km
        if km is None or km.provisioner is None:
            return
        try:
            # jupyter_client escalates request -> SIGTERM -> SIGKILL within shutdown_wait_time.
            await asyncio.wait_for(km.shutdown_kernel(now=not km.has_kernel), SHUTDOWN_WAIT + 1)
        except Exception as error:  # includes TimeoutError
            log.warning("Polite shutdown of %r failed (%s); killing it.", self, error)
            try:
                await km.shutdown_kernel(now=True)
            except Exception:
                log.exception("Could not kill %r; its process group gets SIGKILL.", self)

    def _log_tail(self, lines: int = 10) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        with open(self._log.name, errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
        return "\nThe kernel wrote:\n" + "\n".join(tail) if tail else ""

    def _start_failure(self, error: Exception) -> str:
        from jupyter_client.kernelspec import NoSuchKernel

        if isinstance(error, NoSuchKernel):
            return (
                f"No Jupyter kernel named {self.kernel_name!r} is installed. Install ipykernel "
                "(pip install ipykernel) or pass the name of an installed kernel "
                "(jupyter kernelspec list)."
            )
        return (
            f"The {self.kernel_name!r} subkernel did not start within {self.startup_timeout:g} s "
            f"({error}). Check that `python -m ipykernel_launcher --version` works in this "
            "environment, or raise startup_timeout on a slow machine."
        )

    # -- execution -------------------------------------------------------------------------

    async def execute(self, code: str, timeout: float) -> Execution:
        """Run `code` in the kernel, stopping it after `timeout` seconds."""
        async with self._lock:
            if not self.alive:
                raise KernelError(
                    "This subkernel is not running (it was shut down or failed to restart); "
                    "acquire a new one from the pool."
                )
            return await self._run(code, timeout)

    async def _run(self, code: str, timeout: float) -> Execution:
        started = time.monotonic()
        outputs = _Outputs(self.max_output_bytes)
        before = self._sandbox.pids() if self._sandbox is not None else set()
        # stop_on_error=False: a request sent right after an interrupted one is not aborted.
        msg_id = self._client.execute(
            code, store_history=True, allow_stdin=False, stop_on_error=False
        )
        try:
            ended = await self._collect(msg_id, outputs, deadline=started + timeout)
        except asyncio.CancelledError:
            await self._km.interrupt_kernel()  # do not leave the code running unattended
            raise
        status, restarted, exit_code = await self._settle(msg_id, ended, outputs)
        replayed = total = 0
        if restarted:
            total = len(self._history)
            replayed = await self._replay() if total else 0
        elif status != "ok" and self._sandbox is not None:
            # Processes this failed block started (a fork bomb's copies, say) go with it.
            await asyncio.get_running_loop().run_in_executor(
                None, self._sandbox.kill_new, before, self.pid
            )
        if status == "ok" and self.replay:
            self._history.append((code, timeout))
        return Execution(
            status=status,
            outputs=outputs.result(),
            duration=time.monotonic() - started,
            restarted=restarted,
            timeout=timeout,
            exit_code=exit_code,
            replayed=replayed,
            replay_total=total,
        )

    async def _replay(self) -> int:
        """Re-run the blocks that had succeeded, in order, in the freshly restarted kernel.
        Stops at the first one that fails now; returns how many ran."""
        done = 0
        for code, timeout in self._history:
            outputs = _Outputs(self.max_output_bytes)
            msg_id = self._client.execute(
                code, store_history=True, allow_stdin=False, stop_on_error=False
            )
            ended = await self._collect(msg_id, outputs, deadline=time.monotonic() + timeout)
            if ended == "idle":
                reply = await self._shell_reply(msg_id)
                if outputs.has_error or (reply is not None and reply["status"] != "ok"):
                    break
                done += 1
                continue
            await self._restart()  # it hangs or crashes now: start clean, without the rest
            done = 0
            break
        del self._history[done:]  # the state now holds exactly these blocks
        return done

    async def _collect(self, msg_id: str, outputs: _Outputs, deadline: float) -> str:
        """Gather output of `msg_id` until the kernel is "idle", the "deadline" passes, or
        the process "died"."""
        next_liveness_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_liveness_check:
                if not await self._km.is_alive():
                    return "died"
                next_liveness_check = now + LIVENESS_INTERVAL
            if now >= deadline:
                return "deadline"
            wait = max(0.01, min(LIVENESS_INTERVAL, deadline - now))
            try:
                msg = await self._client.get_iopub_msg(timeout=wait)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue  # late output of an earlier, interrupted execution
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "idle"
            outputs.add(msg)

    async def _settle(
        self, msg_id: str, ended: str, outputs: _Outputs
    ) -> tuple[str, bool, int | None]:
        """Turn how collection ended into (status, restarted, exit_code), recovering the kernel."""
        if ended == "idle":
            reply = await self._shell_reply(msg_id)
            failed = outputs.has_error or (reply is not None and reply["status"] != "ok")
            return ("error" if failed else "ok"), False, None
        if ended == "died":
            exit_code = await self._km.provisioner.poll()
            await self._restart()
            return "crashed", True, exit_code
        await self._km.interrupt_kernel()
        ended = await self._collect(msg_id, outputs, deadline=time.monotonic() + INTERRUPT_GRACE)
        if ended == "idle":
            await self._shell_reply(msg_id)
            return "timeout", False, None
        await self._restart()  # SIGINT was ignored, or the kernel died while handling it
        return "timeout", True, None

    async def _shell_reply(self, msg_id: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """The execute_reply content, read so replies do not pile up on the shell channel."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await self._client.get_shell_msg(timeout=remaining)
            except Empty:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]
        return None

    async def _restart(self) -> None:
        """Kill the kernel's process group and start a fresh kernel with the same settings."""
        self._stop_client()
        try:
            await self._km.restart_kernel(now=True)
            self._remember_process_group()
            await self._connect()
        except Exception as error:
            raise KernelError(
                f"The subkernel could not be restarted ({error}); release it and acquire a new "
                "one from the pool."
            ) from error
        self.restarts += 1


# --------------------------------------------------------------------------------------------
# Pool
# --------------------------------------------------------------------------------------------


class KernelPool:
    """Starts fresh subkernels, one per branch, and stops every one of them.

    Kernels are never reused across branches: state must not leak from one to another.
    `settings` are Subkernel's keyword arguments (kernel_name, sandbox, limits, shared_dirs,
    replay, ...), given to every kernel the pool starts.
    """

    def __init__(self, **settings: Any) -> None:
        inspect.signature(Subkernel).bind(**settings)  # a misspelt setting fails here, not later
        self._settings = settings
        self._kernels: dict[Subkernel, None] = {}  # an ordered set of kernels not yet stopped
        self._warm: deque[tuple[Subkernel, asyncio.Task[None]]] = deque()  # prestarted
        self._starting: set[asyncio.Task[None]] = set()  # every start still in progress
        self._closed = False

    async def __aenter__(self) -> KernelPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @property
    def kernels(self) -> tuple[Subkernel, ...]:
        """Every kernel this pool started (or is starting) and has not stopped yet."""
        return tuple(self._kernels)

    async def acquire(self) -> Subkernel:
        """A ready kernel with fresh state: a prestarted one if any, else a new one."""
        self._check_open()
        kernel, starting = self._warm.popleft() if self._warm else self._start_in_background()
        await starting
        return kernel

    async def prestart(self, n: int) -> None:
        """Start `n` kernels concurrently in the background; returns at once."""
        self._check_open()
        self._warm.extend(self._start_in_background() for _ in range(n))

    @property
    def warm(self) -> int:
        """How many prestarted kernels wait to be acquired."""
        return len(self._warm)

    async def fill(self, n: int) -> None:
        """Prestart kernels until `n` are warm; returns at once."""
        await self.prestart(max(0, n - len(self._warm)))

    async def release(self, kernel: Subkernel) -> None:
        """Shut a kernel down for good."""
        self._kernels.pop(kernel, None)
        await kernel.shutdown()

    async def shutdown(self) -> None:
        """Stop every kernel this pool started, including those still starting. Idempotent."""
        self._closed = True
        self._warm.clear()
        starting = list(self._starting)
        for task in starting:
            task.cancel()  # a cancelled start stops whatever it had launched
        await asyncio.gather(*starting, return_exceptions=True)
        kernels = list(self._kernels)
        self._kernels.clear()
        results = await asyncio.gather(*(k.shutdown() for k in kernels), return_exceptions=True)
        for error in (r for r in results if isinstance(r, BaseException)):
            log.warning("A subkernel failed to shut down cleanly: %s", error)

    def _start_in_background(self) -> tuple[Subkernel, asyncio.Task[None]]:
        kernel = Subkernel(**self._settings)
        self._kernels[kernel] = None
        task = asyncio.create_task(self._start(kernel))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        return kernel, task

    async def _start(self, kernel: Subkernel) -> None:
        try:
            await kernel.start()
        except BaseException:
            self._kernels.pop(kernel, None)
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise KernelError("This kernel pool was shut down; create a new KernelPool.")
