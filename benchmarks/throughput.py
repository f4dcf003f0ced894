"""Tokens per second through the pipeline, beside the raw llama.cpp server on the same requests.

One embedded llama.cpp server (the real default model) serves both. First a solve runs with
code rounds, and every request body the pipeline sends is captured. Then the same bodies are
replayed straight to the server with httpx, each branch's requests in order and the branches
concurrently, as the pipeline sent them. Same seeds, same prompts: the server writes the same
tokens, so the difference is the pipeline's own cost (subkernels, code, voting, bookkeeping).

    python benchmarks/throughput.py [--branches 4] [--rounds 2] [--max-tokens 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict

import httpx
from rich.console import Console
from rich.table import Table

from jupyter_qwq import async_solve
from jupyter_qwq.engines.client import EngineClient
from jupyter_qwq.engines.models import default_model_path
from jupyter_qwq.engines.runtime import Engine
from jupyter_qwq.engines.servers import LlamaCppServer
from jupyter_qwq.session import EngineInfo

PROBLEM = "What is the sum of the squares of the integers from 1 to 20? Check it with Python."


async def pipeline(server: LlamaCppServer, args: argparse.Namespace) -> tuple[float, int, list[dict]]:
    bodies: list[dict] = []

    async def capture(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            bodies.append(json.loads(request.content))

    client = EngineClient(server.base_url, model=server.model_name, api_key=server.api_key)
    client._http.event_hooks["request"].append(capture)
    engine = Engine(client, EngineInfo("llamacpp", server.model_name, server.base_url), server)
    started = time.monotonic()
    session = await async_solve(PROBLEM, opened_engine=engine, branches=args.branches, rounds=args.rounds,
                                max_tokens=args.max_tokens, seed=11, early_stop=False)
    elapsed = time.monotonic() - started
    await client.aclose()
    return elapsed, session.completion_tokens, bodies


async def raw(server: LlamaCppServer, bodies: list[dict]) -> tuple[float, int]:
    by_branch: dict[int, list[dict]] = defaultdict(list)
    for body in bodies:
        by_branch[int(body["seed"]) % 1000].append(body)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=900) as http:

        async def replay(branch_bodies: list[dict]) -> int:
            tokens = 0
            for body in branch_bodies:
                response = await http.post("/chat/completions", json={**body, "stream": False})
                tokens += response.json()["usage"]["completion_tokens"]
            return tokens

        started = time.monotonic()
        counts = await asyncio.gather(*(replay(b) for b in by_branch.values()))
        return time.monotonic() - started, sum(counts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: its own)")
    args = parser.parse_args()
    async with LlamaCppServer(default_model_path(), n_ctx=4096, n_threads=args.threads) as server:
        pipe_time, pipe_tokens, bodies = await pipeline(server, args)
        raw_time, raw_tokens = await raw(server, bodies)
    table = Table(title=f"throughput, {args.branches} branches, {len(bodies)} requests, embedded llama.cpp, "
                        f"{args.threads or 'default'} threads")
    for column in ("path", "tokens", "wall (s)", "tokens/s", "× raw"):
        table.add_column(column, justify="right")
    raw_rate = raw_tokens / raw_time
    table.add_row("raw server, same requests", str(raw_tokens), f"{raw_time:.1f}", f"{raw_rate:.1f}", "1.00")
    pipe_rate = pipe_tokens / pipe_time
    table.add_row("jupyter_qwq pipeline", str(pipe_tokens), f"{pipe_time:.1f}", f"{pipe_rate:.1f}",
                  f"{pipe_rate / raw_rate:.2f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
