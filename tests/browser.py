"""A real JupyterLab server and Debian's chromium (driven by Playwright), for browser tests.

The server runs on a free 127.0.0.1 port with its own config, data, runtime and settings
directories under a temporary directory, no token, and no news or update toasts. It is started in
its own process group and always stopped: shutdown request, then SIGTERM, then SIGKILL.

Chromium is the system one (apt package `chromium`), never a Playwright download.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The explorer this checkout builds (`cd labextension && jlpm build`), which JupyterLab loads
# before an installed one of the same name: browser tests test this checkout's TypeScript.
CHECKOUT_BUILD = Path(__file__).resolve().parents[1] / "jupyter_qwq" / "labextension"
START_TIMEOUT = 60.0  # seconds for the server to answer
STOP_GRACE = 5.0  # seconds between each escalation step when stopping it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(home: Path) -> dict[str, str]:
    """Environment for Jupyter processes whose state all lives under `home`."""
    env = dict(os.environ)
    for name, sub in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
        ("JUPYTERLAB_SETTINGS_DIR", "config/lab/user-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "config/lab/workspaces"),
    ]:
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env.pop("JUPYTER_TOKEN", None)
    return env


def write_user_settings(settings_dir: Path, plugin: str, values: dict) -> None:
    """Write JupyterLab user settings for `plugin` ("@jupyterlab/pkg-extension:name")."""
    package, _, name = plugin.partition(":")
    path = settings_dir / package / f"{name}.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))


@dataclass
class LabServer:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, home: Path) -> Iterator[LabServer]:
    """Run `jupyter lab` serving `root_dir`, with all its state under `home`."""
    env = isolated_env(home)
    if (CHECKOUT_BUILD / "package.json").exists():
        shared = home / "share" / "jupyter"
        (shared / "labextensions").mkdir(parents=True, exist_ok=True)
        (shared / "labextensions" / "jupyter-qwq").symlink_to(CHECKOUT_BUILD, target_is_directory=True)
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(shared), env.get("JUPYTER_PATH")]))
    # The "Would you like to get notified about official Jupyter news?" toast covers screenshots.
    write_user_settings(
        Path(env["JUPYTERLAB_SETTINGS_DIR"]),
        "@jupyterlab/apputils-extension:notification",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    port = free_port()
    log = home / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to open without a kernel
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = LabServer(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(server)


def _wait_until_up(server: LabServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with code {server.process.returncode} before answering; "
                f"its log ends with:\n{server.log_tail()}"
            )
        try:
            server.get("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise TimeoutError(
        f"jupyter lab did not answer on {server.url} within {START_TIMEOUT:.0f} s; "
        f"its log ends with:\n{server.log_tail()}"
    )


def _stop(server: LabServer) -> None:
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            request = urllib.request.Request(server.url + "/api/shutdown", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                process.wait(STOP_GRACE)
                break
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
        process.wait(STOP_GRACE)
    # Anything the server left in its group (kernels it failed to stop) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 2400) -> Iterator[object]:
    """A Playwright page in Debian's chromium; console errors are collected in `page.errors`."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise RuntimeError("Playwright is missing: pip install -e '.[test]'") from error
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.errors = []  # (message, stack) of uncaught exceptions in the page
            page.on("pageerror", lambda e: page.errors.append((e.message, e.stack or "")))
            yield page
        finally:
            browser.close()


# -- helpers for notebooks that run in a real kernel ------------------------------------------------


def open_lab(page, server: LabServer, timeout: float = 60.0) -> None:
    """Load a fresh JupyterLab workspace and wait until the app has started."""
    page.goto(f"{server.url}/lab?reset", wait_until="domcontentloaded")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.started", timeout=timeout * 1000)
    page.evaluate("() => window.jupyterapp.started")


def open_notebook_with_kernel(page, name: str, timeout: float = 60.0) -> None:
    """Open notebook `name` (relative to the server's root) with its kernel; wait until it is idle."""
    page.evaluate(
        "name => window.jupyterapp.commands.execute('docmanager:open', {path: name, factory: 'Notebook'})",
        name,
    )
    page.wait_for_function(
        """name => {
            const w = window.jupyterapp.shell.currentWidget;
            const kernel = w && w.context && w.context.path === name && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
        }""",
        arg=name,
        timeout=timeout * 1000,
    )


def open_notebook_without_kernel(page, name: str) -> None:
    """Open notebook `name` as a reader with no kernel would: none is started."""
    page.evaluate(
        """name => window.jupyterapp.commands.execute('docmanager:open', {
            path: name, factory: 'Notebook',
            kernelPreference: {shouldStart: false, canStart: false, autoStartDefault: false}
        })""",
        name,
    )


@contextlib.contextmanager
def saved_notebook_open(tmp_path: Path, name: str, write) -> Iterator[tuple[LabServer, object]]:
    """A real JupyterLab and a chromium page showing notebook `name`, which `write(path)` saved
    under `tmp_path`, opened as a reader with no kernel would."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write(notebooks / name)
    with jupyter_lab(notebooks, tmp_path / "jhome") as server, chromium_page() as page:
        open_lab(page, server)
        open_notebook_without_kernel(page, name)
        yield server, page


def kernel_status(page) -> str:
    """The execution status of the current notebook's kernel, as the front-end sees it."""
    return page.evaluate(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const s = w && w.sessionContext && w.sessionContext.session;
            return s && s.kernel ? s.kernel.status : 'none';
        }"""
    )
