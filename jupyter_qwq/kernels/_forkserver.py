"""Fork server: a process that has already imported ipykernel (and numpy, sympy, ...) and forks
one fresh kernel per request, which enters its sandbox and then runs ipykernel in-process.

Run as ``python _forkserver.py SOCKET OWNER_PID MODULE...`` (jupyter_qwq.kernels.forkserver
starts it, through jupyter_qwq._processes, with the scrubbed environment a sandboxed kernel
gets). It never runs model-written code itself and holds no state of the kernels it forked: each
child is a copy of the same pristine process. It is single-threaded (a selector loop), so every
fork happens with one thread (numpy's OpenBLAS stops its worker threads in its own pre-fork
handler, at the rehearsal's fork already).

Protocol, over a SOCK_SEQPACKET Unix socket in a 0700 directory: one connection per kernel. The
owner sends one JSON message ``{"argv", "env", "cwd", "sandbox"}`` with the kernel's stdout and
stderr as file descriptors; the server forks and answers ``{"pid": N}`` once the child leads a
session of its own, then ``{"exit": code}`` (a negative signal number, like Popen) when it ends.
If the owner closes the connection first, the child's process group is killed. The server ends
when its owner does (it checks every second), killing its children.

Standard library and the preloaded modules only: it must not import jupyter_qwq (its atexit
would run in every kernel).
"""

import atexit
import gc
import importlib
import importlib.util
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import traceback

import _launch  # a sibling (this script's directory is sys.path[0]): the sandbox's set-up

sys.path.remove(os.path.dirname(os.path.abspath(__file__)))  # not on the kernels' path
STARTUP_ENV = dict(os.environ)  # before the preloads: what they add, kernels get too
MAX_MESSAGE = 1 << 20
KERNEL_MODULE = "ipykernel_launcher"


class Server:
    def __init__(self, path, owner):
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ, self.accept)
        self.owner = owner  # the process that started us: we end when it does
        self.connections = {}  # connection -> the pid of its kernel, or None before the fork
        self.pidfds = {}  # pidfd -> (pid, connection)

    def serve(self):
        while os.getppid() == self.owner:
            for key, _ in self.selector.select(timeout=1.0):
                key.data(key.fileobj)
        for pid in self.connections.values():
            if pid:
                _kill_group(pid)
        # The owner died without stopping us: nobody else will remove our directory (socket, log).
        shutil.rmtree(os.path.dirname(self.listener.getsockname()), ignore_errors=True)

    def accept(self, listener):
        connection, _ = listener.accept()
        self.connections[connection] = None
        self.selector.register(connection, selectors.EVENT_READ, self.receive)

    def receive(self, connection):
        try:
            message, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 4)
        except OSError:
            message, fds = b"", []
        pid = self.connections.get(connection)
        if not message or pid is not None:  # the owner let go (or broke the protocol)
            for fd in fds:
                os.close(fd)
            if pid:
                _kill_group(pid)
            self.forget(connection)
            return
        try:
            request = json.loads(message)
            if len(fds) != 2:
                raise ValueError("expected the kernel's stdout and stderr")
            pid, ready = self.fork(request, fds)
        except Exception as error:  # noqa: BLE001 - the owner falls back to launching
            _send(connection, {"error": f"{type(error).__name__}: {error}"})
            self.forget(connection)
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.connections[connection] = pid
        pidfd = os.pidfd_open(pid)
        self.pidfds[pidfd] = (pid, connection)
        self.selector.register(pidfd, selectors.EVENT_READ, self.reap)
        # The pid is said once the child leads its own session (the owner signals that group);
        # meanwhile the server forks the next kernel.
        self.selector.register(ready, selectors.EVENT_READ, lambda fd: self.ready(fd, connection))

    def ready(self, fd, connection):
        self.selector.unregister(fd)
        os.read(fd, 1)  # a byte: the child called setsid; nothing: it died first (reaped soon)
        os.close(fd)
        pid = self.connections.get(connection)
        if pid:
            _send(connection, {"pid": pid})

    def reap(self, pidfd):
        pid, connection = self.pidfds.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if connection in self.connections:
            self.connections[connection] = 0  # ended: nothing left to kill for it
            _send(connection, {"exit": os.waitstatus_to_exitcode(status)})

    def forget(self, connection):
        self.connections.pop(connection, None)
        self.selector.unregister(connection)
        connection.close()

    def fork(self, request, fds):
        argv = request["argv"]
        if argv[1:3] != ["-m", KERNEL_MODULE] or not _same_file(argv[0], sys.executable):
            raise ValueError(f"this server runs {sys.executable} -m {KERNEL_MODULE} only")
        threads = len(os.listdir("/proc/self/task"))
        if threads > 1:  # a preloaded module started them: a fork could copy a held lock
            raise ValueError(f"the fork server runs {threads} threads (started by a preloaded "
                             "module); forking it is unsafe")
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self.become_kernel(request, fds, ready_w)  # never returns
        os.close(ready_w)
        return pid, ready_r

    def become_kernel(self, request, fds, ready_w):
        code = 1
        try:
            os.setsid()
            os.write(ready_w, b"s")
            self.let_go()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            os.closerange(3, _fd_limit())
            added = {k: v for k, v in os.environ.items() if STARTUP_ENV.get(k) != v}
            os.environ.clear()
            os.environ.update({**request["env"], **added})  # what imports set, as in a kernel
            if request["sandbox"] is not None:
                try:
                    _launch.enter_sandbox(request["sandbox"])
                except BaseException as error:  # noqa: BLE001 - same report as the launcher
                    sys.stderr.write(f"jupyter_qwq sandbox: could not start the kernel: {error}\n")
                    sys.stderr.flush()
                    os._exit(121)
            else:
                os.chdir(request["cwd"])
            parent = os.getppid()
            _launch.prctl(_launch.PR_SET_PDEATHSIG, signal.SIGKILL)  # dropping the uid cleared it
            if os.getppid() != parent:
                os._exit(1)
            code = run_kernel(request["argv"][3:])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:  # noqa: BLE001 - a kernel that could not run says why, in its log
            traceback.print_exc()
        finally:
            try:
                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def let_go(self):
        """In the child: drop every handle on the server (the listener, the other kernels'
        connections; closed with the other descriptors next), so kernel code cannot ask the
        server for anything, and take the signal dispositions of a fresh interpreter."""
        self.selector.close()
        for sock in [self.listener, *self.connections]:
            sock.detach()  # its descriptor is closed below, by number: no object may close it later
        self.connections.clear()
        self.pidfds.clear()
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_kernel(args):
    """What ``python -m ipykernel_launcher ARGS`` does, in this forked process."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # a copy of the server's generator state otherwise, in every kernel
    # ipykernel read JPY_PARENT_PID when the server imported it: say who the parent is now
    launcher = importlib.util.find_spec(KERNEL_MODULE)
    sys.argv = [launcher.origin if launcher else KERNEL_MODULE, *args,
                f"--IPKernelApp.parent_handle={os.getppid()}"]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
    return 0


def rehearse():
    """Initialise one throwaway kernel in a forked child, show one traceback there, and import
    here every module that pulled in (ipykernel imports much lazily: debugpy, the traceback
    formatter), so real kernels find them loaded. The child's threads and sockets end with it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            with tempfile.TemporaryDirectory(prefix="jupyter_qwq-rehearsal-") as scratch:
                connection_file = os.path.join(scratch, "connection.json")
                with open(connection_file, "w") as f:
                    json.dump({"transport": "ipc", "ip": os.path.join(scratch, "k"), "key": "",
                               "signature_scheme": "hmac-sha256", "shell_port": 1,
                               "iopub_port": 2, "stdin_port": 3, "control_port": 4,
                               "hb_port": 5}, f)
                os.environ["IPYTHONDIR"] = scratch
                sys.argv = [KERNEL_MODULE, "-f", connection_file, "--quiet",
                            "--HistoryManager.hist_file=:memory:"]
                from ipykernel import kernelapp

                app = kernelapp.IPKernelApp.instance()
                app.initialize()
                app.shell.run_cell("1 / 0", store_history=False)  # what a traceback needs
                with os.fdopen(write_end, "w") as out:
                    out.write("\n".join(list(sys.modules)))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as names:
        modules = names.read().split()
    os.waitpid(pid, 0)
    for name in modules:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: BLE001, S110 - a kernel imports it itself if it can
                pass


def warm_caches():
    """Do here, once, the plain computation whose caches a kernel would otherwise fill in its
    first cells: format a traceback (inspect's module-by-file cache, pygments' compiled lexers:
    up to a second, often more than an interrupt's grace) and tokenize a cell (tokenize compiles
    its large pattern on first use: most of a first `x = 1`). No thread, no socket."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        from IPython.core.ultratb import AutoFormattedTB
    except ImportError:
        return
    TransformerManager().transform_cell("x = 1\nprint(x)\n")
    for scheme in ("Neutral", "Linux", "NoColor"):
        try:
            raise ZeroDivisionError("warming up")
        except ZeroDivisionError:
            AutoFormattedTB(mode="Context", color_scheme=scheme).structured_traceback(*sys.exc_info())


def _send(connection, message):
    try:
        connection.send(json.dumps(message).encode())
    except OSError:
        pass  # the owner went away; its kernel is killed when we notice


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _fd_limit():
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if 0 < soft < (1 << 30) else 1 << 30


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def main(args):
    path, owner, modules = args[0], int(args[1]), args[2:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the owner's terminal is not ours
    os.close(os.pidfd_open(os.getpid()))  # Linux >= 5.3; else fail now and the owner launches
    for name in ("ipykernel.kernelapp", *modules):
        try:
            __import__(name)
        except Exception as error:  # noqa: BLE001 - a kernel imports it itself, if it can
            sys.stderr.write(f"jupyter_qwq fork server: could not preload {name}: {error}\n")
    rehearse()
    warm_caches()
    gc.freeze()  # the collector leaves the preloaded objects alone: fewer pages copied per kernel
    Server(path, owner).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
