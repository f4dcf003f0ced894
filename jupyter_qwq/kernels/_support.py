"""What this machine allows a sandbox to use: a uid of its own (root) or user namespaces, and
which cgroup controllers (pids, memory) we may create groups under."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["Support", "support"]


@dataclass
class Support:
    mode: str | None  # "uid" (we are root), "userns", or None: no sandbox possible
    reason: str  # why not, when mode is None
    pids_cgroup: str | None = None  # parent directory for per-kernel cgroups
    memory_cgroup: str | None = None
    cgroup_version: int = 0
    notes: list[str] = field(default_factory=list)


def _own_cgroups() -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    v2 = None
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    v2 = path
                for name in controllers.split(","):
                    v1[name] = path
    except OSError:
        pass
    return v1, v2


def _cgroup_mounts() -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    v2 = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                fstype, options = fields[sep + 1], fields[sep + 3].split(",")
                if fstype == "cgroup2" and v2 is None:
                    v2 = fields[4]
                elif fstype == "cgroup":
                    for option in options:
                        v1.setdefault(option, fields[4])
    except (OSError, ValueError):
        pass
    return v1, v2


def _writable_dir(path: str) -> bool:
    probe = os.path.join(path, f"jupyter_qwq-probe-{secrets.token_hex(4)}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def _find_cgroups(support: Support) -> None:
    own_v1, own_v2 = _own_cgroups()
    mounts_v1, mount_v2 = _cgroup_mounts()
    for controller in ("pids", "memory"):
        if controller in mounts_v1 and controller in own_v1:
            parent = os.path.join(mounts_v1[controller], own_v1[controller].lstrip("/"))
            if _writable_dir(parent):
                setattr(support, f"{controller}_cgroup", parent)
                support.cgroup_version = 1
    if mount_v2 and own_v2 is not None and not (support.pids_cgroup and support.memory_cgroup):
        parent = os.path.join(mount_v2, own_v2.lstrip("/"))
        try:
            with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                enabled = f.read().split()
        except OSError:
            enabled = []
        if enabled and _writable_dir(parent):
            for controller in ("pids", "memory"):
                if controller in enabled and not getattr(support, f"{controller}_cgroup"):
                    setattr(support, f"{controller}_cgroup", parent)
                    support.cgroup_version = 2


@lru_cache(maxsize=1)
def support() -> Support:
    if not sys.platform.startswith("linux"):
        return Support(None, f"namespaces need Linux; this is {sys.platform}")
    if os.geteuid() == 0:
        support = Support("uid", "")
        _find_cgroups(support)
        return support
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                return Support(None, "user namespaces are disabled (user.max_user_namespaces=0)")
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            if f.read().strip() == "0":
                return Support(None, "unprivileged user namespaces are disabled "
                                "(kernel.unprivileged_userns_clone=0)")
    except OSError:
        pass
    support = Support("userns", "")
    _find_cgroups(support)
    return support


_warned = False
