"""Every option of a solve, as documented traitlets on one Configurable, and the flag parser.

`%config Solve.branches = 8`, `c.Solve.branches = 8` in ipython_config.py, `jupyter-qwq solve
--branches 8` and `solve(problem, branches=8)` all set the same trait. The flags are derived from
the traits (flags.py).
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, List, TraitError, Unicode, Union, default, validate
from traitlets.config import Configurable

from .answers.constraint import ANSWER_TYPES, AnswerConstraint, parse_range
from .confidence import DEFAULT_WINDOW
from .decisions.policy import SCORES, VOTES, parse_stop
from .decisions.scores import MEASURES
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
    endpoint = Union(
        [List(Unicode()), Unicode()], default_value="",
        help="Base URL of an OpenAI-compatible server, e.g. http://host:8000/v1. Several (the flag "
        "repeated, or a list) serve one model together: each request goes to the least loaded, and "
        "one that stops answering is rested while the others take its requests.",
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
        8, help="Subkernels a notebook keeps started between solves, so the next one need not wait "
        "(one per default branch; each idle one holds about 25 MB of its own)."
    ).tag(config=True)
    max_kernels = Int(
        0, help="Most subkernels alive at once (0: no cap). A branch that would start one more "
        "waits until another branch's kernel is released; it caps `jupyter-qwq eval "
        "--concurrency P`, whose P problems share one pool."
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
    kernel_gateway = Unicode(
        "",
        help="Run the branches' kernels on this Jupyter Kernel Gateway or Enterprise Gateway "
        "(http://host:8888), through jupyter_server's gateway client; its token, if any, from "
        "$JUPYTER_GATEWAY_AUTH_TOKEN. The gateway confines them, not jupyter_qwq's sandbox.",
    ).tag(config=True)

    kernel_gateway_timeout = Float(
        10.0,
        help="Seconds the kernel gateway has to answer a liveness check, an interrupt or a stop; "
        "past them (or at once, when it refuses) the branches whose kernels are there fail, the "
        "others go on.",
    ).tag(config=True)

    @validate("kernel_gateway")
    def _gateway_url(self, proposal: Any) -> str:
        url = proposal.value.strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise TraitError(f"kernel_gateway must be an http(s) URL, e.g. http://127.0.0.1:8888, not {url!r}")
        return url

    fork_kernels = Bool(
        True,
        help="Fork each sandboxed subkernel from a fork server that has imported ipykernel and "
        "kernel_preload once (milliseconds), rather than start a new interpreter (about a second).",
    ).tag(config=True)
    kernel_preload = List(
        Unicode(), ["numpy", "sympy"],
        help="Modules the fork server imports once, so every forked subkernel has them loaded.",
    ).tag(config=True, metavar="MODULE")

    # -- what an answer must be (AIMO: an integer from 0 to 99999) ---------------------------
    answer_type = CaselessStrEnum(
        ANSWER_TYPES, default_value="any",
        help="What the answer must be: any, integer or number. Told to the model; an answer of "
        "another kind stays in the record, marked, but does not vote.",
    ).tag(config=True)
    answer_range = Unicode(
        "",
        help="Closed range the answer must lie in, LO:HI (e.g. 0:99999; leave a side empty for "
        "no bound). Told to the model; an answer outside it stays in the record, marked, but "
        "does not vote. Empty: no range.",
    ).tag(config=True)

    @validate("answer_range")
    def _range(self, proposal: Any) -> str:
        try:
            parse_range(proposal.value)
        except ConfigError as error:
            raise TraitError(str(error)) from None
        return proposal.value.strip()


    # -- which answer, and when to stop: scores, votes, stops and budgets (decisions/) --------
    score = CaselessStrEnum(
        SCORES, default_value="none",
        help="A branch's weight. none: every branch weighs the same; confidence: DeepConf's score "
        "from its token confidence (confidence_measure); prm: a process reward model served by "
        "vLLM (prm_endpoint); critic: the same model asked for the branch's first wrong step.",
    ).tag(config=True)
    confidence_measure = CaselessStrEnum(
        MEASURES, default_value="lowest_group",
        help="Which DeepConf score weighs a branch with --score confidence: lowest_group (the "
        "least sure window), tail (the last window), bottom_10 (mean of the lowest tenth of the "
        "windows) or mean (the whole trace).",
    ).tag(config=True)
    confidence_window = Int(
        DEFAULT_WINDOW,
        help="Tokens in a confidence window (DeepConf's group size, 2048); short traces "
        "(a few hundred tokens) want a smaller one.",
    ).tag(config=True)
    prm_endpoint = Unicode(
        "", help="Base URL of a vLLM server running a process reward model, for --score prm, e.g. "
        "http://127.0.0.1:8001 (`vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling`)."
    ).tag(config=True)
    prm_model = Unicode(
        "Qwen/Qwen2.5-Math-PRM-7B", help="The process reward model's name on prm_endpoint."
    ).tag(config=True)
    prm_aggregate = CaselessStrEnum(
        ("min", "product"), default_value="min",
        help="A branch's PRM score from its steps' rewards: their minimum or their product.",
    ).tag(config=True)
    prm_context = Int(
        4096, help="The PRM's context in tokens; a longer branch is cut from the front (its last "
        "steps are scored) and its record says so."
    ).tag(config=True)
    critic_max_tokens = Int(
        1024, help="Tokens the critic (--score critic) may write about one branch."
    ).tag(config=True)
    vote = CaselessStrEnum(
        VOTES, default_value="majority",
        help="How the groups of equivalent answers are weighed. majority: by count; weighted: by "
        "the sum of their branches' scores; best: the single best-scored branch's answer wins.",
    ).tag(config=True)
    keep_top = Float(
        100.0, help="Vote with only the top PCT% of the answered branches by score (DeepConf's "
        "filter: 10 or 90); 100 keeps all."
    ).tag(config=True)
    stop = Unicode(
        "lossless",
        help="When to stop the branches still running. lossless: once they cannot change the "
        "winner whatever they answer and score (a weighted vote on confidence, best, or keep-top "
        "waits for every branch, as no bound settles them earlier); agree:K: once K branches agree (AIMO-3: agree:4 of 8); confidence: DeepConf "
        "online (warmup, warmup_percentile, consensus); none: run every branch to its end "
        "(as --no-early-stop).",
    ).tag(config=True)
    warmup = Int(
        4, help="With --stop confidence: the first N branches run to their end and set the "
        "threshold below which a later branch is cut mid-stream."
    ).tag(config=True)
    warmup_percentile = Float(
        90.0, help="With --stop confidence: the threshold is this percentile of the warm-up "
        "branches' lowest-group confidence (90: DeepConf-low, cuts most; 10: DeepConf-high)."
    ).tag(config=True)
    consensus = Float(
        0.95, help="With --stop confidence: the solve ends once the leading answer holds this "
        "share of the vote's weight (after the warm-up)."
    ).tag(config=True)
    token_budget = Int(
        0, help="Tokens the branches of one solve may write in all; then the rest are stopped and "
        "the answers so far vote. 0 means no limit."
    ).tag(config=True)

    @validate("stop")
    def _stop_rule(self, proposal: Any) -> str:
        try:
            parse_stop(proposal.value)
        except ValueError as error:
            raise TraitError(str(error)) from None
        return proposal.value.strip().lower()

    @validate("keep_top", "warmup_percentile")
    def _percent(self, proposal: Any) -> float:
        if not 0 < proposal.value <= 100:
            raise TraitError(f"{proposal.trait.name} must be a percentage above 0 and at most 100, "
                             f"not {proposal.value}")
        return proposal.value

    @validate("consensus")
    def _share(self, proposal: Any) -> float:
        if not 0 < proposal.value <= 1:
            raise TraitError(f"consensus must be a share above 0 and at most 1, not {proposal.value}")
        return proposal.value

    @validate("branches", "max_tokens", "vllm_data_parallel", "confidence_window", "prm_context",
              "critic_max_tokens")
    def _at_least_one(self, proposal: Any) -> int:
        if proposal.value < 1:
            raise TraitError(f"{proposal.trait.name} must be at least 1, not {proposal.value}")
        return proposal.value

    @validate("top_logprobs")
    def _logprob_count(self, proposal: Any) -> int:
        if not 0 <= proposal.value <= 20:
            raise TraitError(f"top_logprobs must be between 0 and 20 (what servers allow), not {proposal.value}")
        return proposal.value

    @validate("rounds", "top_k", "output_limit", "warm_kernels", "max_kernels", "context_size", "threads",
              "memory_limit", "cpu_limit", "max_processes", "max_file_size", "kernel_output_limit",
              "warmup", "token_budget")
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

    @validate("code_timeout", "request_timeout", "server_start_timeout", "vllm_cpu_kvcache_gib",
              "kernel_gateway_timeout")
    def _positive_seconds(self, proposal: Any) -> float:
        if proposal.value <= 0:
            raise TraitError(f"{proposal.trait.name} must be more than 0 seconds")
        return proposal.value

    def options(self) -> dict[str, Any]:
        """The settings to record: every trait but the secret."""
        return {name: getattr(self, name) for name in self.trait_names(config=True) if name != "api_key"}

    def answer_constraint(self) -> AnswerConstraint:
        """The answer constraint of answer_type and answer_range (inactive by default)."""
        return AnswerConstraint.from_settings(self.answer_type, self.answer_range)

    @property
    def endpoints(self) -> list[str]:
        """The endpoint URLs given (a string may hold several, separated by spaces or commas)."""
        given = [self.endpoint] if isinstance(self.endpoint, str) else self.endpoint
        return [url for text in given for url in text.replace(",", " ").split()]

    def kernel_settings(self) -> dict[str, Any]:
        """The settings of the subkernels (KernelPool's and Subkernel's keyword arguments)."""
        return {"kernel_name": self.kernel_name, "sandbox": self.sandbox,
                "memory_limit": self.memory_limit, "cpu_limit": self.cpu_limit,
                "max_processes": self.max_processes, "max_file_size": self.max_file_size,
                "max_output_bytes": self.kernel_output_limit, "shared_dirs": tuple(self.shared_dirs),
                "fork_server": self.fork_kernels, "preload": tuple(self.kernel_preload),
                "gateway": self.kernel_gateway, "gateway_timeout": self.kernel_gateway_timeout}


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
    check_decisions(config)
    return config


def check_decisions(config: Solve) -> None:
    """Settings that are fine alone but not together."""
    if config.score == "prm" and not config.prm_endpoint:
        raise ConfigError("--score prm needs --prm-endpoint URL (a vLLM server running a process "
                          "reward model: `vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling`)")
    if config.score == "none" and (config.vote != "majority" or config.keep_top < 100):
        raise ConfigError(f"--vote {config.vote} --keep-top {config.keep_top:g} weighs branches by "
                          "score: choose one with --score confidence|prm|critic")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


