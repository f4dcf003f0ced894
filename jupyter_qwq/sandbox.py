"""Containment for subkernels: namespaces, a private filesystem view, resource limits.

Model-written code is untrusted. Each sandboxed subkernel is started through
``sandbox_launch.py``, which (before exec-ing ipykernel) gives it

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

``sandbox_report()`` says which of these are in force on this machine; ``format_report()``
renders it for ``%qwq sandbox`` / ``jupyter-qwq sandbox``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["Limits", "Sandbox", "available", "sandbox_report", "format_report"]

log = logging.getLogger(__name__)

GiB = 1 << 30
MiB = 1 << 20
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_launch.py")
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
# What this machine allows
# --------------------------------------------------------------------------------------------


@dataclass
class _Support:
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


def _find_cgroups(support: _Support) -> None:
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
def _support() -> _Support:
    if not sys.platform.startswith("linux"):
        return _Support(None, f"namespaces need Linux; this is {sys.platform}")
    if os.geteuid() == 0:
        support = _Support("uid", "")
        _find_cgroups(support)
        return support
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                return _Support(None, "user namespaces are disabled (user.max_user_namespaces=0)")
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            if f.read().strip() == "0":
                return _Support(None, "unprivileged user namespaces are disabled "
                                "(kernel.unprivileged_userns_clone=0)")
    except OSError:
        pass
    support = _Support("userns", "")
    _find_cgroups(support)
    return support


_warned = False


def available() -> bool:
    """Whether sandboxed kernels can start here; logs the reason once when they cannot."""
    global _warned
    support = _support()
    if support.mode is not None and not _probe()[0]:
        support.mode, support.reason = None, f"the sandbox launcher failed: {_probe()[1]}"
    if support.mode is None and not _warned:
        _warned = True
        log.warning("Subkernels run WITHOUT a sandbox: %s. Model-written code can read your "
                    "files, use the network and signal your processes.", support.reason)
    return support.mode is not None


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
            if k in SAFE_ENV or k.startswith(SAFE_ENV_PREFIXES)}
    kept.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return kept


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
        """Where the kernel binds its Unix sockets (a directory it owns)."""
        return os.path.join(self.private_dir, "ipc", "kernel")

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

    def wrap(self, cmd: list[str], connection_file: str, cwd: str) -> list[str]:
        """The launcher command that sets the sandbox up and execs `cmd`."""
        if self.launches:
            self.sweep()  # a restart: nothing of the previous kernel may survive
        self.launches += 1
        config = {
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
        _kill_until_gone(lambda: self.pids() - before - {keep}, time.monotonic() + 2)

    def sweep(self) -> None:
        """Kill every process the kernel left, wherever it went (other process groups too)."""
        if self.uid is not None:
            _kill_uid(self.uid)
        deadline = time.monotonic() + 2
        for path in self.cgroups:
            _kill_until_gone(lambda path=path: set(_cgroup_pids(path)), deadline)

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


def _kill_until_gone(find: Callable[[], set[int]], deadline: float) -> None:
    """SIGKILL what `find` lists, again and again until it lists nothing (children forked
    meanwhile go too) or the deadline passes."""
    while time.monotonic() < deadline:
        pids = find()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


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
    """SIGKILL every process of `uid`: kill(-1) as that uid reaches exactly those, atomically."""
    script = (f"import os\nos.setgroups([]);os.setresgid({uid},{uid},{uid});"
              f"os.setresuid({uid},{uid},{uid})\ntry: os.kill(-1, 9)\nexcept OSError: pass")
    try:
        subprocess.run([sys.executable, "-I", "-S", "-c", script], timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("Could not sweep processes of uid %d: %s", uid, error)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

_PROBE = r"""
import json, os, resource, socket, sys
r = {}
def attempt(name, fn):
    try:
        r[name] = fn()
    except Exception as e:
        r[name] = "%s: %s" % (type(e).__name__, e)
def net():
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect(("127.0.0.1", 9)); return "connected"
    except OSError as e:
        return "refused" if e.errno == 111 else "blocked"
    finally:
        s.close()
def ifaces():
    return sorted(name for _, name in socket.if_nameindex())
attempt("net", net)
attempt("ifaces", ifaces)
attempt("uid", os.getuid)
attempt("home", lambda: os.listdir(os.path.expanduser("~")))
attempt("host_dir", lambda: os.listdir(sys.argv[1]))
attempt("procs", lambda: len([p for p in os.listdir("/proc") if p.isdigit()]))
attempt("write_root", lambda: open("/qwq-probe-escape", "w") and "written")
attempt("limits", lambda: {n: resource.getrlimit(getattr(resource, n))[0]
                           for n in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE")})
attempt("cgroup", lambda: open("/proc/self/cgroup").read())
print(json.dumps(r))
"""


@lru_cache(maxsize=1)
def _probe() -> tuple[bool, str, dict]:
    """Start the launcher once with a small probe script instead of a kernel."""
    support = _support()
    if support.mode is None:
        return False, support.reason, {}
    private = tempfile.mkdtemp(prefix="jupyter_qwq-probe-")
    secret = os.path.join(private, "host-only")
    os.mkdir(secret, 0o755)
    box = None
    try:
        box = Sandbox(private, Limits(), hide=[secret])
        work = os.path.join(private, "work")
        os.mkdir(work, 0o700)
        box.prepare_dirs(work)
        connection = os.path.join(private, "connection.json")
        with open(connection, "w") as f:
            f.write("{}")
        cmd = box.wrap([sys.executable, "-I", "-c", _PROBE, secret], connection, work)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                              env=box.env(dict(os.environ)), cwd=work)
        if done.returncode != 0:
            return False, (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1], {}
        return True, "", json.loads(done.stdout)
    except Exception as error:  # noqa: BLE001 - reported, never raised
        return False, str(error), {}
    finally:
        if box is not None:
            box.close()
        shutil.rmtree(private, ignore_errors=True)


def sandbox_report() -> list[tuple[str, bool, str]]:
    """(protection, in force?, how) for every protection, as tested on this machine."""
    support = _support()
    ok, why, seen = _probe()
    if not ok:
        reason = why or support.reason
        return [("sandbox", False, f"not available: {reason}; kernels run unconfined")]
    limits = seen.get("limits", {})
    own_uid = support.mode == "uid"
    rows = [
        ("own process group", True, "new session per kernel (setsid); group killed on stop"),
        ("cannot signal the caller or other kernels", True,
         f"unprivileged uid {seen.get('uid')} of its own, no capabilities, no_new_privs"
         if own_uid else "user + PID namespace: other processes are not addressable"),
        ("no network", seen.get("net") == "blocked",
         f"network namespace, interfaces {seen.get('ifaces')}, connect: {seen.get('net')}; "
         "kernel reached over Unix sockets"),
        ("private filesystem", isinstance(seen.get("host_dir"), str)
         and "written" not in str(seen.get("write_root")),
         "mount namespace: / read-only, tmpfs over home, /tmp, /run, the notebook directory; "
         "writable: its own work directory; Python and shared_dirs read-only"),
        ("own processes only in /proc", isinstance(seen.get("procs"), int)
         and seen.get("procs", 99) < 5,
         "fresh procfs " + ("with hidepid=invisible" if own_uid else "in a PID namespace")),
        ("environment scrubbed", True, "only PATH, locale, HOME, MPLBACKEND and similar kept"),
        ("memory limit", "RLIMIT_AS" in limits and limits["RLIMIT_AS"] > 0,
         f"RLIMIT_AS {_human(limits.get('RLIMIT_AS'))}"
         + (", cgroup memory limit" if support.memory_cgroup else ", no cgroup (not writable)")),
        ("CPU time limit", limits.get("RLIMIT_CPU", -1) > 0,
         f"RLIMIT_CPU {limits.get('RLIMIT_CPU')} s per kernel process"),
        ("process limit (fork bomb)", limits.get("RLIMIT_NPROC", -1) > 0
         and (own_uid or bool(support.pids_cgroup)),
         f"RLIMIT_NPROC {limits.get('RLIMIT_NPROC')}"
         + (" on a uid of its own (binds: not root)" if own_uid else "")
         + (f", cgroup v{support.cgroup_version} pids.max" if support.pids_cgroup
            else ", no pids cgroup (not writable)")),
        ("file size limit", limits.get("RLIMIT_FSIZE", -1) > 0,
         f"RLIMIT_FSIZE {_human(limits.get('RLIMIT_FSIZE'))}, tmpfs {_human(Limits().tmpfs_size)} each"),
        ("output size limit", True, "kernels.py keeps at most max_output_bytes per execution"),
    ]
    return rows


def _human(n: int | None) -> str:
    if not isinstance(n, int) or n < 0:
        return "unlimited"
    for unit, size in (("GiB", GiB), ("MiB", MiB)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def format_report(rows: list[tuple[str, bool, str]] | None = None) -> str:
    """The report as plain text, one line per protection."""
    rows = sandbox_report() if rows is None else rows
    width = max(len(name) for name, _, _ in rows)
    lines = ["Subkernel sandbox:"]
    for name, on, detail in rows:
        lines.append(f"  [{'on ' if on else 'OFF'}] {name.ljust(width)}  {detail}")
    missing = [name for name, on, _ in rows if not on]
    if missing:
        lines.append("Not in force here: " + ", ".join(missing) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report())
