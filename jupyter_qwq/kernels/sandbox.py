"""Containment for subkernels: namespaces, a private filesystem view, resource limits.

Model-written code is untrusted. Each sandboxed subkernel is started (by the provisioner in
provisioner.py) through ``_launch.py``, which, before exec-ing ipykernel, gives it

* its own network namespace with no interface up: no connection leaves it, not even to
  127.0.0.1; the kernel is reached over Unix sockets in its private directory;
* its own mount namespace: everything read-only, tmpfs over ``$HOME``, ``/root``, ``/home``,
  ``/tmp``, ``/var/tmp``, ``/run``, ``/dev/shm``, ``/mnt``, ``/media``, ``/srv`` and the caller's
  working directory (the notebook's directory); the Python installation and ``shared_dirs``
  bound back read-only; only the kernel's own ``work`` directory (its cwd) is writable on disk;
* a uid of its own (root callers) or a user + PID namespace (other callers), so it cannot
  signal or ptrace the process that started it, the user's kernel, or other branches;
* resource limits: RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NPROC, no core files, and a
  cgroup with ``pids.max`` and a memory limit where the machine lets us create one;
* an environment reduced to harmless variables (no API keys or tokens).

What this machine allows is _support.py's; whether it works here, and which protections are in
force, sandbox_check.py's.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import site
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

from .. import _processes
from ..redaction import KEY_VARIABLES
from ._support import support as _support

__all__ = ["GiB", "Limits", "MiB", "Sandbox", "ipc_prefix"]

log = logging.getLogger(__name__)

GiB = 1 << 30
MiB = 1 << 20
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launch.py")
LAUNCH_FAILED = 121  # the launcher's exit code when it could not set the sandbox up
UID_RANGE = (1_900_000_000, 2_000_000_000)  # unprivileged uids that own no file on the host
HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/run", "/dev/shm", "/dev/mqueue", "/mnt",
          "/media", "/srv")
STICKY = ("/tmp", "/var/tmp", "/dev/shm")
SYSTEM = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt", "/var", "/dev",
          "/proc", "/sys")
SAFE_ENV = {"PATH", "LANG", "LANGUAGE", "TERM", "TZ", "HOME", "USER", "LOGNAME", "SHELL",
            "MPLBACKEND", "JPY_PARENT_PID", "PYTHONHASHSEED", "PYTHONIOENCODING",
            "PYTHONUNBUFFERED", "PYDEVD_DISABLE_FILE_VALIDATION", "COLUMNS", "LINES",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"}
SAFE_ENV_PREFIXES = ("LC_", "JUPYTER_QWQ_")


@dataclass(frozen=True)
class Limits:
    """Per-kernel limits. None switches a limit off."""

    memory: int | None = 4 * GiB  # bytes of address space (RLIMIT_AS) and cgroup memory
    cpu_seconds: int | None = 600  # CPU time of one kernel process (RLIMIT_CPU), all cells
    max_processes: int | None = 64  # processes + threads (RLIMIT_NPROC, cgroup pids.max)
    max_file_size: int | None = 64 * MiB  # largest file it may write (RLIMIT_FSIZE)
    tmpfs_size: int = 256 * MiB  # each private tmpfs (/tmp, $HOME, ...) it may fill

    def rlimits(self) -> dict[str, int]:
        chosen = {
            "RLIMIT_AS": self.memory,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_FSIZE": self.max_file_size,
        }
        return {name: value for name, value in chosen.items() if value is not None}


# --------------------------------------------------------------------------------------------
# One kernel's sandbox
# --------------------------------------------------------------------------------------------


def _python_paths(executable: str) -> list[str]:
    """Directories the kernel's interpreter must be able to read."""
    if os.path.realpath(executable) == os.path.realpath(sys.executable):
        paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                 *site.getsitepackages()]
        if site.ENABLE_USER_SITE:
            paths.append(site.getusersitepackages())
    else:
        paths = _foreign_python_paths(executable)
    paths.append(os.path.dirname(os.path.abspath(executable)))
    paths.append(os.path.dirname(os.path.realpath(executable)))
    return paths


@lru_cache(maxsize=8)
def _foreign_python_paths(executable: str) -> list[str]:
    script = ("import site,sys,json;print(json.dumps([sys.prefix,sys.base_prefix,sys.exec_prefix,"
              "sys.base_exec_prefix,*site.getsitepackages(),"
              "*([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]))")
    try:
        done = subprocess.run([executable, "-c", script], capture_output=True, text=True,
                              timeout=30, check=True)
        return list(json.loads(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def _home_dirs() -> list[str]:
    homes = {"/root"}
    for value in (os.environ.get("HOME"), os.path.expanduser("~")):
        if value and value.startswith("/"):
            homes.add(os.path.realpath(value))
    return sorted(homes)


def _hidden(extra: list[str]) -> list[str]:
    paths = {os.path.realpath(p) for p in (*HIDDEN, *_home_dirs(), *extra)}
    try:
        cwd = os.path.realpath(os.getcwd())  # the notebook's directory
        if cwd not in SYSTEM and not any(cwd.startswith(s + "/") for s in SYSTEM[1:7]):
            paths.add(cwd)
    except OSError:
        pass
    return sorted(p for p in paths if p not in SYSTEM)


def _clean_env(env: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in env.items()
            if (k in SAFE_ENV or k.startswith(SAFE_ENV_PREFIXES)) and k not in KEY_VARIABLES}
    kept.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return kept


def ipc_prefix(private_dir: str) -> str:
    """Where a sandboxed kernel binds its Unix sockets (a directory it owns)."""
    return os.path.join(private_dir, "ipc", "kernel")


class Sandbox:
    """The sandbox of one subkernel: its uid, cgroups, launcher config and cleanup."""

    def __init__(self, private_dir: str, limits: Limits, shared_dirs: list[str] | tuple = (),
                 hide: list[str] | tuple = ()) -> None:
        support = _support()
        if support.mode is None:
            raise RuntimeError(f"no sandbox on this machine: {support.reason}")
        self.support = support
        self.private_dir = private_dir
        self.limits = limits
        self.shared_dirs = [os.path.realpath(d) for d in shared_dirs]
        self.hide = list(hide)
        self.uid: int | None = None
        if support.mode == "uid":
            self.uid = UID_RANGE[0] + secrets.randbelow(UID_RANGE[1] - UID_RANGE[0])
        self.cgroups: list[str] = []  # per-kernel cgroup directories we created
        self.config_file = os.path.join(private_dir, "sandbox.json")
        self.launches = 0
        self._create_cgroups()

    @property
    def ipc_prefix(self) -> str:
        return ipc_prefix(self.private_dir)

    def prepare_dirs(self, work: str) -> None:
        os.mkdir(os.path.join(self.private_dir, "ipc"), 0o700)
        if self.uid is not None:
            for path in (work, os.path.join(self.private_dir, "ipc")):
                os.chown(path, self.uid, self.uid)

    def _create_cgroups(self) -> None:
        name = f"jupyter_qwq-{os.getpid()}-{secrets.token_hex(6)}"
        settings = []
        limits = self.limits
        v1 = self.support.cgroup_version == 1
        if self.support.pids_cgroup and limits.max_processes:
            settings.append((self.support.pids_cgroup, {"pids.max": limits.max_processes}))
        if self.support.memory_cgroup and limits.memory:
            memory = (
                {"memory.limit_in_bytes": limits.memory, "memory.memsw.limit_in_bytes": limits.memory}
                if v1 else {"memory.max": limits.memory, "memory.swap.max": 0}
            )
            settings.append((self.support.memory_cgroup, memory))
        for parent, values in settings:
            path = os.path.join(parent, name)
            try:
                if path not in self.cgroups:
                    os.mkdir(path)
                    self.cgroups.append(path)
                for key, value in values.items():
                    if os.path.exists(os.path.join(path, key)):
                        with open(os.path.join(path, key), "w") as f:
                            f.write(str(value))
            except OSError as error:
                log.warning("Could not set up cgroup %s (%s); rlimits still apply.", path, error)

    def config(self, cmd: list[str], connection_file: str, cwd: str) -> dict[str, object]:
        """What the launcher (or a forked kernel) needs to enter this sandbox, for one launch."""
        if self.launches:
            self.sweep()  # a restart: nothing of the previous kernel may survive
        self.launches += 1
        return {
            "uid": self.uid,
            "private_dir": self.private_dir,
            "connection_file": connection_file,
            "cwd": cwd,
            "hide": _hidden(self.hide),
            "home_dirs": _home_dirs(),
            "sticky": list(STICKY),
            "expose": sorted({os.path.realpath(p) for p in _python_paths(cmd[0])}
                             | set(self.shared_dirs)),
            "tmpfs_bytes": self.limits.tmpfs_size,
            "rlimits": self.limits.rlimits(),
            "cgroups": [os.path.join(c, "cgroup.procs") for c in self.cgroups],
        }

    def wrap(self, cmd: list[str], config: dict[str, object]) -> list[str]:
        """The launcher command that enters the sandbox `config` describes and execs `cmd`."""
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        return [sys.executable, "-I", "-S", LAUNCHER, self.config_file, "--", *cmd]

    def env(self, env: dict[str, str]) -> dict[str, str]:
        kept = _clean_env(env)
        if self.support.mode == "uid":
            kept["USER"] = kept["LOGNAME"] = "sandbox"
        return kept

    def pids(self) -> set[int]:
        """Every live process of this kernel (the kernel itself included)."""
        if self.cgroups:
            return set(_cgroup_pids(self.cgroups[0]))
        if self.uid is not None:
            return _uid_pids(self.uid)
        return set()

    def kill_new(self, before: set[int], keep: int | None) -> None:
        """SIGKILL the kernel's processes that were not there `before`, sparing `keep`; repeated
        until none is left, so children forked meanwhile go too."""
        _processes.sweep(lambda: self.pids() - before - {keep}, time.monotonic() + 2)

    def sweep(self) -> None:
        """Kill every process the kernel left, wherever it went (other process groups too)."""
        if self.uid is not None:
            _kill_uid(self.uid)
        deadline = time.monotonic() + 2
        for path in self.cgroups:
            _processes.sweep(lambda path=path: set(_cgroup_pids(path)), deadline)

    def close(self) -> None:
        self.sweep()
        for path in self.cgroups:
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # the last processes are still exiting
        self.cgroups.clear()


def _cgroup_pids(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except OSError:
        return []


def _uid_pids(uid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.add(int(entry))
            except OSError:
                pass
    return found


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid`: kill(-1) as that uid reaches exactly those, atomically.
    The system's kill(1) does it in milliseconds; an interpreter where there is none."""
    kill = shutil.which("kill", path=os.defpath)
    if kill:
        command = [kill, "-9", "-1"]
    else:
        command = [sys.executable, "-I", "-S", "-c", "import os\ntry: os.kill(-1, 9)\nexcept OSError: pass"]
    try:
        subprocess.run(command, user=uid, group=uid, extra_groups=[], timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("Could not sweep processes of uid %d: %s", uid, error)

