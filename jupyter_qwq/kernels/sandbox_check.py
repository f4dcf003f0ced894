"""Whether the sandbox works here, tested for real: the launcher is started once with a probe
instead of a kernel. ``sandbox_report()`` says which protections are in force on this machine;
``format_report()`` renders it for ``%qwq sandbox`` / ``jupyter-qwq sandbox``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache

from ._support import support as _support
from .sandbox import GiB, Limits, MiB, Sandbox

__all__ = ["available", "format_report", "sandbox_report"]

log = logging.getLogger(__name__)

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
        probe = [sys.executable, "-I", "-c", _PROBE, secret]
        cmd = box.wrap(probe, box.config(probe, connection, work))
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
