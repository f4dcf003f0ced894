"""The sandbox as a jupyter_client kernel provisioner.

Registered under the ``jupyter_client.kernel_provisioners`` entry point as ``jupyter-qwq-sandbox``,
so any kernel spec can ask for it::

    "metadata": {"kernel_provisioner": {"provisioner_name": "jupyter-qwq-sandbox",
                                        "config": {"private_dir": "...", "memory": 4294967296}}}

It is a local provisioner (the kernel is a process in a group of its own) whose ``pre_launch``
prepares the sandbox and keeps only harmless environment variables, whose ``launch_kernel`` asks
this process's fork server (forkserver.py) for a fresh kernel that enters the sandbox after the
fork, or, where that cannot work, wraps the kernel's command in the sandbox launcher
(kernels/_launch.py), and whose ``cleanup`` kills every process the kernel left, wherever it went
(its uid, its cgroups), and removes its cgroups. One provisioner serves a kernel through all its
restarts (jupyter_client keeps it), so the sandbox's uid and cgroups do too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Int, List, Unicode

from .forkserver import PRELOAD, ForkedKernel, ForkServerError, fork_server
from .sandbox import Limits, Sandbox, ipc_prefix

__all__ = ["PROVISIONER_NAME", "SandboxProvisioner", "ipc_prefix", "sandbox_provisioner"]

PROVISIONER_NAME = "jupyter-qwq-sandbox"

log = logging.getLogger(__name__)
KILL_WAIT = 5.0  # seconds jupyter_client waits for a killed kernel to end
_said_why_not_forked = False


class SandboxProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A local kernel, contained: no network, a private read-only filesystem view, limits."""

    private_dir = Unicode(
        config=True,
        help="The kernel's private 0700 directory: its sockets, its work directory, its config.",
    )
    memory = Int(Limits.memory, allow_none=True, config=True,
                 help="Bytes of address space and cgroup memory; None: no limit.")
    cpu_seconds = Int(Limits.cpu_seconds, allow_none=True, config=True,
                      help="CPU seconds of one kernel process over all its cells; None: no limit.")
    max_processes = Int(Limits.max_processes, allow_none=True, config=True,
                        help="Processes and threads it may run; None: no limit.")
    max_file_size = Int(Limits.max_file_size, allow_none=True, config=True,
                        help="Bytes of the largest file it may write; None: no limit.")
    shared_dirs = List(Unicode(), config=True,
                       help="Host directories the kernel may read (read-only).")

    fork_server = Bool(True, config=True,
                       help="Fork the kernel from this process's fork server (milliseconds) "
                            "rather than launch a new interpreter (about a second).")
    preload = List(Unicode(), list(PRELOAD), config=True,
                   help="Modules the fork server imports once, so forked kernels have them free.")

    sandbox: Sandbox | None = None  # made at the first launch, kept through restarts
    forked = False  # whether the current kernel came from the fork server
    _sandbox_config: dict[str, Any] | None = None  # the current launch's

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if self.sandbox is None:
            limits = Limits(memory=self.memory, cpu_seconds=self.cpu_seconds,
                            max_processes=self.max_processes, max_file_size=self.max_file_size)
            self.sandbox = Sandbox(self.private_dir, limits, self.shared_dirs)
            self.sandbox.prepare_dirs(str(kwargs["cwd"]))
        kwargs = await super().pre_launch(**kwargs)
        connection_file = os.path.realpath(self.parent.connection_file)
        self._sandbox_config = self.sandbox.config(kwargs["cmd"], connection_file, str(kwargs["cwd"]))
        kwargs["env"] = self.sandbox.env(kwargs["env"])
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        assert self.sandbox is not None and self._sandbox_config is not None
        self.forked = False
        if self.fork_server:
            try:
                return await self._fork(cmd, kwargs)
            except ForkServerError as error:
                _say_why_not_forked(str(error))
        return await super().launch_kernel(self.sandbox.wrap(cmd, self._sandbox_config), **kwargs)

    async def _fork(self, cmd: list[str], kwargs: dict[str, Any]) -> Any:
        """Like LocalProvisioner.launch_kernel, with a forked kernel in place of a Popen."""
        server_env = {k: v for k, v in kwargs["env"].items()
                      if not k.startswith(("JUPYTER_QWQ_", "JPY_"))}  # nothing of one kernel's
        server = await fork_server(tuple(self.preload), server_env)
        self.process = await asyncio.to_thread(
            server.fork, cmd, kwargs["env"], str(kwargs["cwd"]), self._sandbox_config,
            kwargs["stdout"].fileno(), kwargs["stderr"].fileno())
        self.pid = self.pgid = self.process.pid  # it leads a session of its own
        self.cwd = kwargs["cwd"]
        self.forked = True
        return self.connection_info

    async def kill(self, restart: bool = False) -> None:
        await super().kill(restart=restart)
        if isinstance(self.process, ForkedKernel):  # then jupyter_client's 0.1 s polls find it gone
            await self.process.exited(KILL_WAIT)

    async def wait(self) -> int | None:
        process = self.process
        if isinstance(process, ForkedKernel):
            await process.exited(float("inf"))
        try:
            return await super().wait()
        finally:
            if isinstance(process, ForkedKernel) and self.process is None:
                process.close()

    async def cleanup(self, restart: bool = False) -> None:
        if isinstance(self.process, ForkedKernel):
            self.process.close()
        await super().cleanup(restart=restart)
        if not restart and self.sandbox is not None:
            await asyncio.to_thread(self.sandbox.close)


def _say_why_not_forked(reason: str) -> None:
    global _said_why_not_forked
    if not _said_why_not_forked:
        _said_why_not_forked = True
        log.warning("Subkernels start the slow way (a new interpreter each, about a second): %s.",
                    reason)


def sandbox_provisioner(km: Any, private_dir: str, limits: Limits, shared_dirs: list[str],
                        fork_server: bool = True, preload: tuple[str, ...] = PRELOAD) -> Any:
    """The sandbox provisioner for `km`'s kernel, made the way a kernel spec asks for it."""
    from jupyter_client.provisioning import KernelProvisionerFactory

    spec = km.kernel_spec
    spec.metadata = {**spec.metadata, "kernel_provisioner": {
        "provisioner_name": PROVISIONER_NAME,
        "config": {"private_dir": private_dir, "memory": limits.memory,
                   "cpu_seconds": limits.cpu_seconds, "max_processes": limits.max_processes,
                   "max_file_size": limits.max_file_size, "shared_dirs": shared_dirs,
                   "fork_server": fork_server, "preload": list(preload)},
    }}
    factory = KernelProvisionerFactory.instance()
    return factory.create_provisioner_instance(km.kernel_id, spec, parent=km)
