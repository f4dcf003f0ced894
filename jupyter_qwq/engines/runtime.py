"""Choosing the engine and keeping managed servers alive between solves.

The solver only ever sees an `Engine`: a client and what to record about it. Whether a server was
started here (and is reused while it lives) or is remote is decided in this module alone.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ConfigError, EngineCrashed, QwqError
from ..session import EngineInfo
from .client import EngineClient
from .fleet import EngineFleet, FleetRecovery

if TYPE_CHECKING:
    from ..config import Solve
    from .managed import ManagedServer

DEFAULT_VLLM_MODEL = "Qwen/QwQ-32B"

# The settings that shape a managed server; a solve with the same ones reuses it while it lives.
_SERVER_SETTINGS = ("model", "context_size", "threads", "extra_buffer_types", "vllm_command",
                    "vllm_data_parallel", "vllm_cpu_kvcache_gib", "vllm_args")
_running: dict[tuple, ManagedServer] = {}
_last_started: list[ManagedServer] = []  # the latest, kept after it stops: its log says why


@dataclass
class Engine:
    client: EngineClient | EngineFleet
    info: EngineInfo
    server: ManagedServer | None = None

    def recovery(self, timeout: float) -> Recovery | FleetRecovery | None:
        """What retries a round lost with the engine: a managed server is restarted once per solve;
        several endpoints send it to another; a lone endpoint is not retried."""
        if self.server is not None:
            return Recovery(self.server, self.client, timeout)
        if isinstance(self.client, EngineFleet):
            return FleetRecovery(self.client)
        return None


class Recovery:
    """Restarts a managed server that died mid-solve, once per solve, on the same port and key.

    Every branch whose stream broke calls it; the first caller restarts the server and the
    others wait for that same restart. A second death ends the solve.
    """

    def __init__(self, server: ManagedServer, client: EngineClient | EngineFleet, timeout: float,
                 restarts: int = 1) -> None:
        self.server = server
        self.client = client
        self.timeout = timeout
        self.restarts_left = restarts
        self._lock = asyncio.Lock()
        self._generation = 0  # how many times it was restarted
        self.crash: str | None = None  # how the server last died, with its log's tail

    async def __call__(self, seen_generation: int) -> int | None:
        """Bring the server back; the new generation, or None when it cannot be recovered.

        `seen_generation` is the generation the caller's request was sent to: if a restart
        already happened since, the caller only has to retry.
        """
        async with self._lock:
            if self._generation > seen_generation and self.server.alive:
                return self._generation
            self.crash = await asyncio.to_thread(self.server.crash_report)
            if self.restarts_left <= 0:
                return None
            self.restarts_left -= 1
            try:  # start() clears what the dead process left, then starts on the same port and key
                await self.server.start(timeout=self.timeout)
            except QwqError:
                return None
            await self.client.reset_connections()
            self._generation += 1
            return self._generation

    @property
    def generation(self) -> int:
        return self._generation

    def retried(self, generation: int) -> str:
        return f"it was restarted (generation {generation}) and the round was retried"

    def failure(self, error: QwqError) -> QwqError:
        """The error that ends the solve once the server cannot be brought back."""
        if self.crash:
            return EngineCrashed(self.crash)
        return type(error)(f"{error} Its log: {self.server.log_path}")


def choose_kind(config: Solve) -> str:
    """auto → an endpoint when one is given, vLLM where it can run, else llama.cpp."""
    if config.engine != "auto":
        if config.engine == "endpoint" and not config.endpoints:
            raise ConfigError("--engine endpoint needs --endpoint URL (e.g. http://host:8000/v1)")
        return config.engine
    if config.endpoints:
        return "endpoint"
    from .vllm import vllm_runs_here

    return "vllm" if vllm_runs_here(config.vllm_command or None) else "llamacpp"


def engine_settings(config: Solve) -> tuple:
    """The settings that decide which engine a solve talks to: equal settings, same engine."""
    return (choose_kind(config), tuple(config.endpoints), config.api_key, config.request_timeout,
            *(getattr(config, name) for name in _SERVER_SETTINGS))


async def open_engine(config: Solve) -> Engine:
    """A ready engine for `config`: connect to the endpoint, or start (or reuse) a server."""
    kind = choose_kind(config)
    if kind == "endpoint":
        clients = [_client(config, url, config.model, config.api_key) for url in config.endpoints]
        client = clients[0] if len(clients) == 1 else EngineFleet(clients)
        try:
            model = await client.resolve_model()
        except BaseException:
            await client.aclose()
            raise
        return Engine(client, EngineInfo(kind="endpoint", model=model, endpoint=client.base_url,
                                         endpoints=[c.base_url for c in clients] if len(clients) > 1 else []))
    server = await _managed_server(kind, config)
    client = _client(config, server.base_url, server.model_name, server.api_key)
    return Engine(client, EngineInfo(kind=kind, model=server.model_name, endpoint=server.base_url), server)


def _client(config: Solve, base_url: str, model: str, api_key: str) -> EngineClient:
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"the endpoint {base_url!r} is not an http(s) URL, e.g. http://host:8000/v1")
    return EngineClient(base_url, model=model, api_key=api_key, read_timeout=config.request_timeout)


async def _managed_server(kind: str, config: Solve) -> ManagedServer:
    key = (kind, *(getattr(config, name) for name in _SERVER_SETTINGS))
    server = _running.get(key)
    if server is not None and server.alive:
        return server
    server = new_server(kind, config)
    _last_started[:] = [server]
    await server.start(timeout=config.server_start_timeout)
    _running[key] = server
    return server


def new_server(kind: str, config: Solve) -> ManagedServer:
    """The managed server these settings describe (not started)."""
    from .llamacpp import LlamaCppServer
    from .vllm import VllmServer, find_vllm, vllm_build

    if kind == "llamacpp":
        from .models import resolve_model

        return LlamaCppServer(resolve_model(config.model or None), n_ctx=config.context_size or 8192,
                              n_threads=config.threads or os.cpu_count() or 1,
                              extra_buffer_types=config.extra_buffer_types)
    executable = find_vllm(config.vllm_command or None)
    device = vllm_build(executable).device
    model = config.model or default_vllm_model(device)
    return VllmServer(
        model, command=executable, device=device, max_model_len=config.context_size or None,
        data_parallel=config.vllm_data_parallel, cpu_kvcache_gib=config.vllm_cpu_kvcache_gib,
        extra_args=shlex.split(config.vllm_args),
        model_name=Path(model).name if Path(model).is_dir() else None,
    )


def default_vllm_model(device: str) -> str:
    """QwQ-32B on GPUs; on the CPU, the embedded model as converted by the CPU setup."""
    if device != "cpu":
        return DEFAULT_VLLM_MODEL
    from .vllm_setup import installed_vllm_cpu

    setup = installed_vllm_cpu()
    if setup is None or not setup.model.is_dir():
        raise ConfigError("vLLM on the CPU needs a model it can run: pass --model (a Hugging Face "
                          "folder or model id), or convert the embedded one with: "
                          "jupyter-qwq setup vllm-cpu")
    return str(setup.model)


def running_servers() -> list[ManagedServer]:
    return [s for s in _running.values() if s.alive]


def last_server() -> ManagedServer | None:
    """The server this process started last, running or not (one that died keeps its log)."""
    return _last_started[0] if _last_started else None


def stop_servers() -> None:
    """Stop every server this process started."""
    for server in list(_running.values()):
        server.stop()
    _running.clear()
