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
import logging
import os
import shutil
import tempfile
import time
import uuid
from queue import Empty
from typing import Any, BinaryIO

import zmq

from .. import _processes
from ..exceptions import KernelError
from ..redaction import KEY_VARIABLES
from .execution import MAX_OUTPUT_BYTES, Execution, Outputs
from .forkserver import PRELOAD
from .sandbox import Limits

__all__ = ["Subkernel"]

log = logging.getLogger(__name__)

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
LIVENESS_INTERVAL = 0.2  # seconds between checks that the kernel process still runs
INTERRUPT_GRACE = 1.0  # seconds a kernel gets to become idle after SIGINT before a restart
SHUTDOWN_WAIT = 2.0  # jupyter_client's grace for a polite shutdown; we kill, and allow this + 1 s
RECONNECT_INTERVAL_MS = 5  # how soon our sockets retry to reach a kernel still starting


def _transport_for(connection_file: str) -> str:
    """IPC sockets next to the connection file, inside the 0700 private directory, so no other
    user can even connect; TCP where IPC is missing or the socket path would be too long."""
    longest_socket_path = len(os.path.splitext(connection_file)[0]) + len("-ipc-5")
    return "ipc" if os.name == "posix" and longest_socket_path < 100 else "tcp"


class Subkernel:
    """One ipykernel process with its own state, process group and private directory.

    `sandbox`: contain the kernel (kernels/provisioner.py) when this machine allows it; False
    runs it unconfined (debugging). The limits apply to the sandboxed kernel; None lifts one.
    `shared_dirs`: host directories the sandboxed kernel may read (read-only).
    `replay`: after a restart, re-run the blocks that had succeeded so the state comes back.
    `fork_server`: fork a sandboxed kernel from this process's fork server (kernels/forkserver.py,
    milliseconds) instead of launching a new interpreter (about a second); `preload`: the
    modules that server imports once.
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
        memory_limit: int | None = Limits.memory,
        cpu_limit: int | None = Limits.cpu_seconds,
        max_processes: int | None = Limits.max_processes,
        max_file_size: int | None = Limits.max_file_size,
        shared_dirs: list[str] | tuple[str, ...] = (),
        replay: bool = True,
        fork_server: bool = True,
        preload: list[str] | tuple[str, ...] = PRELOAD,
    ) -> None:
        self.kernel_name = kernel_name
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        self.workdir = workdir  # where the private directory is created (default: system temp)
        self.max_output_bytes = max_output_bytes
        self.limits = Limits(memory=memory_limit, cpu_seconds=cpu_limit,
                             max_processes=max_processes, max_file_size=max_file_size)
        self.shared_dirs = list(shared_dirs)
        self.replay = replay
        self.fork_server = fork_server
        self.preload = tuple(preload)
        self._want_sandbox = sandbox
        self._history: list[tuple[str, float]] = []  # successful blocks, for replay
        self.restarts = 0
        self._km: Any = None
        self._client: Any = None
        self._private_dir: str | None = None
        self._log: BinaryIO | None = None  # the kernel process's own stdout and stderr
        self._closed = False
        self._pgid = 0  # the process group we own, for the leftovers of shutdown and of exit
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

    @property
    def where(self) -> str:
        """Where this kernel's code runs, as the record says it."""
        if not self.sandboxed:
            return "local subkernel, not sandboxed"
        return "local subkernel, sandboxed" + (", forked" if self.forked else "")

    @property
    def forked(self) -> bool:
        """Whether the running kernel was forked from the fork server (not launched)."""
        return bool(getattr(self._km.provisioner, "forked", False)) if self._km is not None else False

    @property
    def _sandbox(self) -> Any:
        return getattr(self._km.provisioner, "sandbox", None) if self._km is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the kernel and wait until it answers; raises KernelError if it cannot."""
        if self._km is not None or self._closed:
            raise KernelError("This subkernel was already started; create a new Subkernel.")
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
            await self._stop_kernel()  # the provisioner's cleanup sweeps the sandbox
        finally:
            if self._pgid:  # children the kernel left in its group, and its private directory
                await asyncio.to_thread(_processes.stop, self._pgid, 0, kill_now=True)
            elif self._private_dir:
                shutil.rmtree(self._private_dir, ignore_errors=True)
            if self._log is not None:
                self._log.close()

    async def _launch(self) -> None:
        from jupyter_client import AsyncKernelManager  # imported late: it is slow to import

        self._private_dir = tempfile.mkdtemp(prefix="jupyter_qwq-kernel-", dir=self.workdir)
        os.mkdir(self.cwd, 0o700)
        connection_file = os.path.join(self._private_dir, "connection.json")
        sandboxed = self._want_sandbox and _sandbox_available()
        if sandboxed:
            from .provisioner import ipc_prefix, sandbox_provisioner

            where = {"transport": "ipc", "ip": ipc_prefix(self._private_dir)}
            if _transport_for(where["ip"] + ".json") != "ipc":
                raise KernelError(f"The sandboxed kernel needs Unix sockets, but {where['ip']!r} is "
                                  "too long for one; pass a shorter workdir.")
        else:
            where = {"transport": _transport_for(connection_file)}
        self._km = AsyncKernelManager(kernel_name=self.kernel_name, connection_file=connection_file,
                                      shutdown_wait_time=SHUTDOWN_WAIT, log=log, **where)
        # Our sockets connect before the kernel binds its own; ZeroMQ then retries after its
        # reconnect interval, 100 ms by default: most of a forked kernel's start-up.
        self._km.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_INTERVAL_MS)
        if sandboxed:
            self._km.kernel_id = str(uuid.uuid4())
            self._km.provisioner = sandbox_provisioner(self._km, self._private_dir, self.limits,
                                                       self.shared_dirs, self.fork_server,
                                                       self.preload)
        self._log = open(os.path.join(self._private_dir, "kernel.log"), "wb")  # noqa: SIM115
        await self._km.start_kernel(
            env=self._kernel_env(),
            cwd=self.cwd,
            stdout=self._log,
            stderr=self._log,
            extra_arguments=["--HistoryManager.enabled=False"],  # no SQLite: In/Out stay in memory
        )
        self._remember_process_group()
        await self._connect()

    def _kernel_env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}  # code could print one
        return {**inherited, "MPLBACKEND": INLINE_BACKEND, **self.extra_env, "JPY_PARENT_PID": str(os.getpid())}

    def _remember_process_group(self) -> None:
        """Own the kernel's process group; when it is stopped, its private directory goes too."""
        if self._pgid and self._pgid != (self.pgid or self.pid):  # after a restart: the old group
            _processes.stop(self._pgid, 0, kill_now=True, cleanup=False)
        self._pgid = self.pgid or self.pid or 0
        if self._pgid:
            private_dir = self._private_dir
            _processes.own(self._pgid, "kernel",
                           cleanup=lambda: shutil.rmtree(private_dir, ignore_errors=True))

    async def _connect(self) -> None:
        self._client = self._km.client(context=self._km.context)
        # No stdin channel: input() then raises StdinNotImplementedError instead of hanging.
        self._client.start_channels(stdin=False, hb=False)
        await self._wait_for_ready(time.monotonic() + self.startup_timeout)

    async def _wait_for_ready(self, deadline: float) -> None:
        """Until the kernel answers kernel_info on shell and IOPub reaches us too. Like
        jupyter_client's wait_for_ready, without its final 0.2 s of draining IOPub: stale
        messages are skipped by their parent id anyway."""
        while True:
            msg_id = self._client.kernel_info()
            reply = await self._shell_reply(msg_id, timeout=min(1.0, deadline - time.monotonic()))
            if reply is not None:
                try:
                    await self._client.get_iopub_msg(timeout=0.2)  # IOPub is connected
                except Empty:
                    pass
                else:
                    self._adapt_protocol(reply)
                    return
            if not await self._km.is_alive():
                raise RuntimeError("the kernel died before replying to kernel_info")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no reply in {self.startup_timeout:g} s")

    def _adapt_protocol(self, kernel_info: dict[str, Any]) -> None:
        """Speak the kernel's protocol version, as jupyter_client's wait_for_ready does."""
        from jupyter_client.session import protocol_version

        major = int(str(kernel_info.get("protocol_version", protocol_version)).split(".")[0])
        if major != int(protocol_version.split(".")[0]):
            self._client.session.adapt_version = major

    def _stop_client(self) -> None:
        if self._client is not None:
            self._client.stop_channels()
            self._client = None

    async def _stop_kernel(self) -> None:
        km = self._km
        if km is None or km.provisioner is None:
            return
        try:
            # Killed at once: the kernel's state is thrown away, nothing in it needs a polite end
            # (which costs jupyter_client's polls of 0.1 s), and the sandbox sweep follows.
            await asyncio.wait_for(km.shutdown_kernel(now=True), SHUTDOWN_WAIT + 1)
        except Exception as error:  # includes TimeoutError
            log.warning("Shutdown of %r failed (%r); killing it again.", self, error)
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
        outputs = Outputs(self.max_output_bytes)
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
            outputs = Outputs(self.max_output_bytes)
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

    async def _collect(self, msg_id: str, outputs: Outputs, deadline: float) -> str:
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
        self, msg_id: str, ended: str, outputs: Outputs
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


def _sandbox_available() -> bool:
    from .sandbox_check import available

    return available()
