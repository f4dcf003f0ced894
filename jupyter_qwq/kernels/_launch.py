"""Sandbox launcher: puts itself in fresh namespaces, builds a private filesystem view, applies
limits, drops privileges and execs the real kernel command.

Run as ``python -I -S _launch.py CONFIG.json -- KERNEL ARGV...`` (jupyter_qwq.kernels.sandbox
writes the config and builds the command). Standard library only, no site import: it runs
before the kernel and its start-up time counts for every subkernel.

Two modes, chosen by the config:

* ``"uid"`` set (the caller is root): new mount, network, IPC and UTS namespaces; the process
  then switches to that unprivileged uid/gid (no capabilities, no_new_privs) and *execs* the
  kernel, so the kernel is this very process (pid and process group unchanged). A uid of its
  own cannot signal or ptrace anything else on the machine, and ``/proc`` is a fresh instance
  mounted ``hidepid=invisible`` so it sees only its own processes.
* ``"userns"`` (the caller is not root): a user namespace mapping the caller's uid to itself,
  plus mount, network, IPC, UTS and PID namespaces. The launcher forks; the child is PID 1 of
  the new PID namespace, mounts a fresh ``/proc`` and execs the kernel; the launcher waits and
  exits with the kernel's status (re-raising its signal).

Any failure before the exec is written to stderr and ends the launcher with exit code 121.

The fork server (_forkserver.py) imports this module: its forked kernels call
``enter_sandbox`` (everything above but the exec) and then run ipykernel in-process.
"""

import ctypes
import ctypes.util
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
SYS_MOUNT_SETATTR = 442  # same number on x86_64, aarch64 and every other generic-table arch

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(path):
    return None if path is None else os.fsencode(path)


def mount(source, target, fstype, flags, data=None):
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        f"mount {target}",
    )


def unshare(flags):
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def prctl(option, arg):
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def _read_only_everywhere():
    """Make every mount of this (new) mount namespace read-only and nosuid."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long
    result = syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/",
        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result == 0:
        return
    # Kernels before 5.12: remount each mount point, keeping the flags it already has.
    with open("/proc/self/mountinfo") as f:
        entries = [line.split() for line in f]
    for entry in sorted(entries, key=lambda e: len(e[4])):
        target = entry[4].replace("\\040", " ")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        options = entry[5].split(",")
        flags |= MS_NODEV if "nodev" in options else 0
        flags |= MS_NOEXEC if "noexec" in options else 0
        try:
            mount(None, target, None, flags)
        except OSError:
            pass  # a mount hidden under another one, or one we may not touch


def _makedirs(path, mode=0o755):
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        pass


def _under(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def build_filesystem(cfg):
    """In the new mount namespace: read-only root, tmpfs over private places, the kernel's own
    directories bound writable, shared directories bound read-only."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    owner = cfg.get("uid")
    private = cfg["private_dir"]
    hides = [p for p in cfg["hide"] if os.path.isdir(p) and not os.path.islink(p)]
    # Sources must be reachable after a tmpfs covers them: hold them open as O_PATH fds.
    exposures = []
    for path in cfg["expose"]:
        if any(_under(path, h) for h in hides + [private]) and os.path.exists(path):
            exposures.append((path, os.open(path, os.O_PATH), False))
    for name in ("ipc", "work"):
        path = os.path.join(private, name)
        exposures.append((path, os.open(path, os.O_PATH), True))
    with open(cfg["connection_file"], "rb") as f:
        connection = f.read()

    _read_only_everywhere()

    size = "size=%d" % cfg["tmpfs_bytes"]
    for path in sorted(hides, key=len):
        if any(_under(path, h) and path != h for h in hides):
            continue  # already under another tmpfs
        if path in cfg["home_dirs"] and owner is not None:
            data = "mode=0700,uid=%d,gid=%d,%s" % (owner, owner, size)
        elif path in cfg["sticky"]:
            data = "mode=1777," + size
        else:
            data = "mode=0755," + size
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, data)

    # The private directory: a small tmpfs the kernel cannot write to (so it cannot plant links
    # where its parent writes), holding a copy of the connection file and two bound directories.
    _makedirs(private)
    mount("tmpfs", private, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1048576")
    for path, fd, writable in sorted(exposures, key=lambda e: len(e[0])):
        if os.path.isdir("/proc/self/fd/%d" % fd):
            _makedirs(path)
        else:
            _makedirs(os.path.dirname(path))
            if not os.path.exists(path):
                open(path, "wb").close()
        mount("/proc/self/fd/%d" % fd, path, None, MS_BIND | MS_REC)
        flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if writable else MS_RDONLY)
        mount(None, path, None, flags)
        os.close(fd)
    fd = os.open(cfg["connection_file"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, connection)
    if owner is not None:
        os.fchown(fd, owner, owner)
    os.close(fd)
    mount(None, private, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def set_limits(limits):
    for name, value in limits.items():
        which = getattr(resource, name)
        soft, hard = resource.getrlimit(which)
        value = int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def join_cgroups(paths):
    for procs in paths:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))


def drop_privileges(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _exit_like(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def enter_sandbox(cfg):
    """Contain this process as `cfg` says; it returns in the process that is to become the
    kernel (in userns mode a child, PID 1 of a new PID namespace), with its cwd set."""
    parent = os.getppid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the starter died before we got here: stop
    if os.getppid() != parent:
        os._exit(1)
    join_cgroups(cfg.get("cgroups", []))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if cfg.get("network_namespace", True):
        flags |= CLONE_NEWNET
    userns = cfg.get("uid") is None
    if userns:
        uid, gid = os.getuid(), os.getgid()
        unshare(flags | CLONE_NEWUSER | CLONE_NEWPID)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", "%d %d 1" % (uid, uid))
        _write("/proc/self/gid_map", "%d %d 1" % (gid, gid))
    else:
        unshare(flags)
    build_filesystem(cfg)
    if userns:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the interrupt is for the kernel
        child = os.fork()
        if child:
            while True:
                try:
                    _, status = os.waitpid(child, 0)
                    break
                except InterruptedError:
                    continue
            _exit_like(status)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    else:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
        drop_privileges(cfg["uid"])
    set_limits(cfg.get("rlimits", {}))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    os.chdir(cfg["cwd"])


def launch(cfg, argv):
    env = dict(os.environ)
    enter_sandbox(cfg)
    os.execvpe(argv[0], argv, env)


def main(args):
    with open(args[0]) as f:
        cfg = json.load(f)
    argv = args[2:] if args[1:2] == ["--"] else args[1:]
    try:
        launch(cfg, argv)
    except BaseException as error:  # noqa: BLE001 - report why the sandbox failed, then stop
        sys.stderr.write("jupyter_qwq sandbox: could not start the kernel: %s\n" % (error,))
        sys.stderr.flush()
        os._exit(121)


if __name__ == "__main__":
    main(sys.argv[1:])
