"""vLLM as a managed engine: on GPUs (tensor and data parallel), or its CPU build on the CPU."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError
from .managed import HOST, ManagedServer, pick_free_port

__all__ = ["VllmBuild", "VllmServer", "auto_reasoning_parser", "cpu_has_bf16", "find_vllm",
           "visible_gpu_count", "vllm_build", "vllm_runs_here"]

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

