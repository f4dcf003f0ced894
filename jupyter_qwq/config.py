"""Every option of a solve, as documented traitlets on one Configurable, and the flag parser.

`%config Solve.branches = 8`, `c.Solve.branches = 8` in ipython_config.py, `jupyter-qwq solve
--branches 8` and `solve(problem, branches=8)` all set the same trait. The flags are derived from
the traits (flags.py).
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from .exceptions import ConfigError

ENGINES = ("auto", "vllm", "llamacpp", "endpoint")
PROMPT_MIXES = ("tir", "cot", "mixed")
TOOL_PROTOCOLS = ("continue", "chat")


class Solve(Configurable):
    """How a problem is solved: branches, rounds of code, sampling, engine and budgets."""

    branches = Int(8, help="Number of reasoning branches sampled for each problem.").tag(config=True)
    rounds = Int(
        4, help="Most code blocks a branch may run; each one's output goes back to the model."
    ).tag(config=True)
    engine = CaselessStrEnum(
        ENGINES,
        default_value="auto",
        help="Where the model runs. auto: an endpoint when --endpoint is given, else vLLM where "
        "it can run (a GPU build with GPUs visible, or a CPU build; found on PATH, beside this "
        "Python or named by vllm_command), else the embedded llama.cpp default.",
    ).tag(config=True)
    model = Unicode(
        "",
        help="Model to serve or request. llamacpp: a local GGUF path (default: the embedded "
        "Qwen2.5-Coder-0.5B-Instruct); vllm: a model id or local path (default: Qwen/QwQ-32B on "
        "GPUs, the embedded model converted by `jupyter-qwq setup vllm-cpu` on the CPU); "
        "endpoint: the model name (default: the first one the server lists).",
    ).tag(config=True)
    endpoint = Unicode(
        "", help="Base URL of an OpenAI-compatible server, e.g. http://host:8000/v1."
    ).tag(config=True)
    api_key = Unicode(
        help="API key for --endpoint. Unset: $JUPYTER_QWQ_API_KEY, else $OPENAI_API_KEY. Never "
        "written into a record or a notebook."
    ).tag(config=True)

    @default("api_key")
    def _api_key_from_environment(self) -> str:
        return os.environ.get("JUPYTER_QWQ_API_KEY") or os.environ.get("OPENAI_API_KEY") or ""
    temperature = Float(
        None, allow_none=True,
        help="Sampling temperature. Unset: the model family's (sampling.py: QwQ 0.6, Qwen2.5 0.7, "
        "else 0.7).",
    ).tag(config=True)
    top_p = Float(
        None, allow_none=True,
        help="Nucleus sampling: keep the smallest set of tokens with this mass. Unset: the model "
        "family's (QwQ 0.95, Qwen2.5 0.8, else 0.95).",
    ).tag(config=True)
    min_p = Float(
        None, allow_none=True,
        help="Min-p sampling: drop tokens below this fraction of the top token's probability. "
        "Unset: the model family's (0 for the known families, else 0.05).",
    ).tag(config=True)
    top_k = Int(
        None, allow_none=True,
        help="Keep only the k most likely tokens; 0 turns it off. Unset: the model family's "
        "(QwQ 40, Qwen2.5 20, else 0).",
    ).tag(config=True)
    greedy_branch = Bool(
        True,
        help="Branch 0 decodes greedily (temperature 0) when the model family allows it (not "
        "QwQ, Qwen3 or DeepSeek-R1, which repeat themselves without sampling).",
    ).tag(config=True)
    prompts = CaselessStrEnum(
        PROMPT_MIXES, default_value="tir",
        help="Which branches may run code. tir: all; cot: none (step by step); mixed: two "
        "tool-integrated branches for each chain-of-thought one.",
    ).tag(config=True)
    hints = Bool(
        False, help="Give branches 1, 2, ... a different hint each (branch 0 gets none)."
    ).tag(config=True)
    tool_protocol = CaselessStrEnum(
        TOOL_PROTOCOLS, default_value="continue",
        help="How a code block's output returns to the model. continue: appended to the "
        "assistant's own turn as an ```output block, and the model goes on writing that turn "
        "(Qwen2.5-Math's TIR format; vLLM's continue_final_message); chat: as a new user message "
        "(for endpoints that cannot continue a turn; used anyway if the endpoint refuses).",
    ).tag(config=True)
    vote_fallbacks = Bool(
        False,
        help="Let answers that were not boxed (the last 'the answer is ...' or the last number) "
        "vote. Off: they stay in the record, marked, but do not vote.",
    ).tag(config=True)
    max_tokens = Int(
        4096, help="Token budget of one branch, over all its rounds (raise it for QwQ: 16k-32k)."
    ).tag(config=True)
    seed = Int(
        -1, help="Base sampling seed; branch i uses seed + i. -1 picks one at random (recorded)."
    ).tag(config=True)
    code_timeout = Float(10.0, help="Seconds one code block may run before it is interrupted.").tag(
        config=True
    )
    output_limit = Int(
        1000, help="Characters of a code block's output given back to the model (head and tail)."
    ).tag(config=True)
    early_stop = Bool(
        True,
        help="Stop the remaining branches once they can no longer change the vote's winner.",
    ).tag(config=True)
    time_limit = Float(
        0.0, help="Wall-clock budget of a whole solve in seconds; 0 means no limit."
    ).tag(config=True)
    request_timeout = Float(
        600.0,
        help="Seconds to wait for the server's next bytes (llama.cpp queues requests, so this "
        "covers waiting for other branches).",
    ).tag(config=True)
    server_start_timeout = Float(
        600.0, help="Seconds a managed server may take to become ready."
    ).tag(config=True)
    threads = Int(
        0, help="CPU threads of the embedded llama.cpp server; 0 means every core (measured 1.4x "
        "the tokens/s of llama.cpp's own default of half the cores: benchmarks/throughput.py)."
    ).tag(config=True)
    warm_kernels = Int(
        4, help="Subkernels a notebook keeps started between solves, so the next one need not wait."
    ).tag(config=True)
    context_size = Int(
        0,
        help="Context window in tokens: llama.cpp's n_ctx (0 means 8192), vLLM's --max-model-len "
        "(0 means the model's own on GPUs, 4096 on the CPU).",
    ).tag(config=True)
    top_logprobs = Int(
        20,
        help="Alternatives per generated token whose log-probabilities the engine returns; each "
        "branch's confidence is computed from them (DeepConf's token confidence). 0 asks for none.",
    ).tag(config=True)
    extra_buffer_types = Bool(
        False,
        help="Let the embedded llama.cpp repack weights into extra buffer types (AMX, CPU_REPACK). "
        "Off by default: on CPUs with AMX it crashes the server at its first request.",
    ).tag(config=True)
    vllm_command = Unicode(
        "",
        help="The `vllm` executable to run, e.g. in a venv of its own (vLLM pins torch and "
        "transformers). Empty: `vllm` on PATH or beside this Python, else the CPU build made by "
        "`jupyter-qwq setup vllm-cpu`.",
    ).tag(config=True)
    vllm_data_parallel = Int(
        1, help="vLLM's --data-parallel-size: model replicas, for throughput (GPUs: tensor "
        "parallel size × this many)."
    ).tag(config=True)
    vllm_cpu_kvcache_gib = Float(
        4.0,
        help="GiB of RAM for the KV cache of vLLM's CPU build (VLLM_CPU_KVCACHE_SPACE; a value in "
        "the environment wins). Without it vLLM asks for 92% of the machine's memory.",
    ).tag(config=True)
    vllm_args = Unicode(
        "", help="More arguments for `vllm serve`, as one shell-quoted string, e.g. "
        "'--enable-log-requests --max-num-seqs 32'."
    ).tag(config=True)

    # -- where the code runs: each branch's subkernel and its sandbox -------------------------
    kernel_name = Unicode(
        "python3", help="The Jupyter kernel each branch's code runs in (jupyter kernelspec list)."
    ).tag(config=True)
    sandbox = Bool(
        True,
        help="Contain each subkernel (no network, a private read-only filesystem view, its own "
        "uid, limits; SECURITY.md). Off runs model-written code unconfined: for debugging only.",
    ).tag(config=True)
    memory_limit = Int(
        4 << 30, allow_none=True,
        help="Bytes of memory a sandboxed subkernel may use (address space and cgroup); None: no limit.",
    ).tag(config=True)
    cpu_limit = Int(
        600, allow_none=True,
        help="CPU seconds a sandboxed subkernel may use over all its code blocks; None: no limit.",
    ).tag(config=True)
    max_processes = Int(
        64, allow_none=True,
        help="Processes and threads a sandboxed subkernel may run (a fork bomb stops there).",
    ).tag(config=True)
    max_file_size = Int(
        64 << 20, allow_none=True, help="Bytes of the largest file a sandboxed subkernel may write."
    ).tag(config=True)
    kernel_output_limit = Int(
        1_000_000,
        help="Characters of a code block's outputs kept in the record (the model reads at most "
        "output_limit of them).",
    ).tag(config=True)
    shared_dirs = List(
        Unicode(), help="Host directories a sandboxed subkernel may read (read-only), e.g. data."
    ).tag(config=True)
    fork_kernels = Bool(
        True,
        help="Fork each sandboxed subkernel from a fork server that has imported ipykernel and "
        "kernel_preload once (milliseconds), rather than start a new interpreter (about a second).",
    ).tag(config=True)
    kernel_preload = List(
        Unicode(), ["numpy", "sympy"],
        help="Modules the fork server imports once, so every forked subkernel has them loaded.",
    ).tag(config=True, metavar="MODULE")

    @validate("branches", "max_tokens", "vllm_data_parallel")
    def _at_least_one(self, proposal: Any) -> int:
        if proposal.value < 1:
            raise TraitError(f"{proposal.trait.name} must be at least 1, not {proposal.value}")
        return proposal.value

    @validate("top_logprobs")
    def _logprob_count(self, proposal: Any) -> int:
        if not 0 <= proposal.value <= 20:
            raise TraitError(f"top_logprobs must be between 0 and 20 (what servers allow), not {proposal.value}")
        return proposal.value

    @validate("rounds", "top_k", "output_limit", "warm_kernels", "context_size", "threads",
              "memory_limit", "cpu_limit", "max_processes", "max_file_size", "kernel_output_limit")
    def _not_negative(self, proposal: Any) -> int:
        if proposal.value is not None and proposal.value < 0:
            raise TraitError(f"{proposal.trait.name} must be 0 or more, not {proposal.value}")
        return proposal.value

    @validate("temperature", "time_limit")
    def _not_negative_float(self, proposal: Any) -> float:
        if proposal.value is not None and proposal.value < 0:
            raise TraitError(f"{proposal.trait.name} must be 0 or more, not {proposal.value}")
        return proposal.value

    @validate("top_p", "min_p")
    def _probability(self, proposal: Any) -> float:
        if proposal.value is not None and not 0.0 <= proposal.value <= 1.0:
            raise TraitError(f"{proposal.trait.name} must be between 0 and 1, not {proposal.value}")
        return proposal.value

    @validate("code_timeout", "request_timeout", "server_start_timeout", "vllm_cpu_kvcache_gib")
    def _positive_seconds(self, proposal: Any) -> float:
        if proposal.value <= 0:
            raise TraitError(f"{proposal.trait.name} must be more than 0 seconds")
        return proposal.value

    def options(self) -> dict[str, Any]:
        """The settings to record: every trait but the secret."""
        return {name: getattr(self, name) for name in self.trait_names(config=True) if name != "api_key"}

    def kernel_settings(self) -> dict[str, Any]:
        """The settings of the subkernels (KernelPool's and Subkernel's keyword arguments)."""
        return {"kernel_name": self.kernel_name, "sandbox": self.sandbox,
                "memory_limit": self.memory_limit, "cpu_limit": self.cpu_limit,
                "max_processes": self.max_processes, "max_file_size": self.max_file_size,
                "max_output_bytes": self.kernel_output_limit, "shared_dirs": tuple(self.shared_dirs),
                "fork_server": self.fork_kernels, "preload": tuple(self.kernel_preload)}


def make_config(base: Solve | None = None, **overrides: Any) -> Solve:
    """A Solve with `overrides` applied over `base` (or the defaults); bad values → ConfigError."""
    config = Solve(parent=base.parent if base else None, config=base.config if base else None)
    if base is not None:
        for name in base.trait_names(config=True):
            setattr(config, name, getattr(base, name))
    unknown = sorted(set(overrides) - set(config.trait_names(config=True)))
    if unknown:
        raise ConfigError(
            f"unknown option {', '.join(unknown)}; known options: "
            + ", ".join(sorted(config.trait_names(config=True)))
        )
    for name, value in overrides.items():
        try:
            setattr(config, name, value)
        except TraitError as error:
            raise ConfigError(f"bad value for {name}: {_first_line(error)}") from None
    return config


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


