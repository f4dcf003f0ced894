"""The sandbox as a jupyter_client kernel provisioner.

Registered under the ``jupyter_client.kernel_provisioners`` entry point as ``jupyter-qwq-sandbox``,
so any kernel spec can ask for it::

    "metadata": {"kernel_provisioner": {"provisioner_name": "jupyter-qwq-sandbox",
                                        "config": {"private_dir": "...", "memory": 4294967296}}}

It is a local provisioner (the kernel is a child process in a group of its own) whose
``pre_launch`` wraps the kernel's command in the sandbox launcher (kernels/_launch.py) and keeps
only harmless environment variables, and whose ``cleanup`` kills every process the kernel left,
wherever it went (its uid, its cgroups), and removes its cgroups. One provisioner serves a kernel
through all its restarts (jupyter_client keeps it), so the sandbox's uid and cgroups do too.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Int, List, Unicode

from .sandbox import Limits, Sandbox, ipc_prefix

__all__ = ["PROVISIONER_NAME", "SandboxProvisioner", "ipc_prefix", "sandbox_provisioner"]

PROVISIONER_NAME = "jupyter-qwq-sandbox"


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

    sandbox: Sandbox | None = None  # made at the first launch, kept through restarts

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if self.sandbox is None:
            limits = Limits(memory=self.memory, cpu_seconds=self.cpu_seconds,
                            max_processes=self.max_processes, max_file_size=self.max_file_size)
            self.sandbox = Sandbox(self.private_dir, limits, self.shared_dirs)
            self.sandbox.prepare_dirs(str(kwargs["cwd"]))
        kwargs = await super().pre_launch(**kwargs)
        connection_file = os.path.realpath(self.parent.connection_file)
        kwargs["cmd"] = self.sandbox.wrap(kwargs["cmd"], connection_file, str(kwargs["cwd"]))
        kwargs["env"] = self.sandbox.env(kwargs["env"])
        return kwargs

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart and self.sandbox is not None:
            await asyncio.to_thread(self.sandbox.close)


def sandbox_provisioner(km: Any, private_dir: str, limits: Limits, shared_dirs: list[str]) -> Any:
    """The sandbox provisioner for `km`'s kernel, made the way a kernel spec asks for it."""
    from jupyter_client.provisioning import KernelProvisionerFactory

    spec = km.kernel_spec
    spec.metadata = {**spec.metadata, "kernel_provisioner": {
        "provisioner_name": PROVISIONER_NAME,
        "config": {"private_dir": private_dir, "memory": limits.memory,
                   "cpu_seconds": limits.cpu_seconds, "max_processes": limits.max_processes,
                   "max_file_size": limits.max_file_size, "shared_dirs": shared_dirs},
    }}
    factory = KernelProvisionerFactory.instance()
    return factory.create_provisioner_instance(km.kernel_id, spec, parent=km)
