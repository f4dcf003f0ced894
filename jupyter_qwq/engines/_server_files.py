"""What a managed server leaves on disk: its log (read back for error messages), and a pid file
per running server, from which a later process sweeps servers whose owner died without stopping
them (a crashed or SIGKILLed kernel runs no atexit)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import platformdirs

from .. import _processes

SERVER_ID_ENV = "JUPYTER_QWQ_SERVER_ID"  # marks every process of a server, for stale cleanup


def new_log_path(kind: str, server_id: str, log_dir: str | os.PathLike[str] | None) -> Path:
    base = Path(log_dir) if log_dir else Path(platformdirs.user_log_dir("jupyter_qwq")) / "servers"
    return base / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{server_id}" / "server.log"


def read_tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def server_state_dir() -> Path:
    """Where each running server leaves a small pid file for :func:`cleanup_stale_servers`."""
    return Path(platformdirs.user_cache_dir("jupyter_qwq")) / "servers"


def write_pid_file(server: Any) -> None:
    record = {"server_id": server.server_id, "kind": server.kind, "pgid": server.pgid,
              "owner_pid": server._owner_pid, "port": server.port, "log": str(server.log_path)}
    try:
        state_dir = server_state_dir()
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_dir / f".{server.server_id}.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, state_dir / f"{server.server_id}.json")
    except OSError:
        pass  # best effort: the atexit hook still covers a normal exit


def remove_pid_file(server_id: str) -> None:
    try:
        (server_state_dir() / f"{server_id}.json").unlink(missing_ok=True)
    except OSError:
        pass


def cleanup_stale_servers(state_dir: Path | None = None, grace: float = 5.0) -> list[int]:
    """Stop servers whose owning process died without stopping them; return their pgids.

    Best effort. A group is only signalled if one of its processes still carries the
    server's id in its environment (on systems with /proc), so a recycled pgid is safe.
    """
    state_dir = state_dir or server_state_dir()
    stopped = []
    for pid_file in sorted(state_dir.glob("*.json")):
        try:
            record = json.loads(pid_file.read_text())
            owner, pgid, server_id = record["owner_pid"], record["pgid"], record["server_id"]
        except (OSError, ValueError, KeyError, TypeError):
            pid_file.unlink(missing_ok=True)
            continue
        if _processes.alive(owner):
            continue
        if _group_is_server(pgid, server_id):
            _processes.stop(pgid, grace)
            stopped.append(pgid)
        pid_file.unlink(missing_ok=True)
    return stopped


def _group_is_server(pgid: int, server_id: str) -> bool:
    """Whether one of the group's processes still carries the server's id (a recycled pgid does not)."""
    marker = f"{SERVER_ID_ENV}={server_id}".encode()
    return any(_processes.environment_has(pid, marker) for pid in _processes.group_members(pgid))

