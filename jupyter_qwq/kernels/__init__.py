"""Subkernels: one isolated, stateful Jupyter kernel per reasoning branch, sandboxed.

    execution.py      what code did: nbformat outputs, and the text the model reads back
    subkernel.py      one kernel: start, execute with a timeout, interrupt, restart and replay
    pool.py           fresh kernels, started ahead, one per branch, all stopped
    sandbox.py        one kernel's containment (uid or namespaces, filesystem view, limits)
    provisioner.py    the sandbox as a jupyter_client kernel provisioner
    forkserver.py     kernels in milliseconds: forked from a server that imported ipykernel once
    _forkserver.py    that server (a script: standard library and the preloaded modules only)
    sandbox_check.py  whether the sandbox works here, and what is in force
    _support.py       what this machine allows a sandbox to use
    _launch.py        the launcher that sets the sandbox up and execs the kernel (a forked
                      kernel enters the sandbox with the same code)
"""

from __future__ import annotations

from .execution import Execution
from .pool import KernelPool
from .subkernel import Subkernel

__all__ = ["Execution", "KernelPool", "Subkernel"]
