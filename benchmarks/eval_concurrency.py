"""Problems per hour of `jupyter-qwq eval` at --concurrency 1, 2 and 4, on one engine.

The same problems (the first N of GSM8K test, ../shared/data) are solved at each concurrency with
one engine and one kernel pool, one setting after the other, each in a fresh results file; the
table gives problems per hour and its ratio to concurrency 1, with the accuracy and the engine's
tokens/s beside it (the ratio is only worth reading if the accuracy and tokens per problem stay
alike). Every level samples with the same seeds (`--seed`: problem by problem, branch i with
seed S + i), so each writes nearly the same tokens and the ratio measures the scheduling, not
the luck of the samples. The engine batches the branches of concurrent problems: vLLM does,
llama.cpp's embedded server serves one request at a time.

    python benchmarks/eval_concurrency.py --engine vllm [--problems 16] [--branches 4]
        [--max-tokens 600] [--levels 1,2,4] [--seed 1] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jupyter_qwq.config import make_config
from jupyter_qwq.engines.runtime import stop_servers
from jupyter_qwq.evaluate import load_scores, read_dataset, run
from jupyter_qwq.flags import build_parser, overrides_from_args
from jupyter_qwq.solving import Solving

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K = Path("qwen25math") / "gsm8k" / "test.jsonl"


async def measure(args: argparse.Namespace) -> list[tuple[int, int, float, list]]:
    engine = f"--endpoint {args.endpoint}" if args.endpoint else f"--engine {args.engine}"
    flags = f"{engine} --branches {args.branches} --max-tokens {args.max_tokens} --seed {args.seed}"
    config = make_config(None, **overrides_from_args(build_parser(with_problem=False).parse_args(shlex.split(flags))))
    items = read_dataset(args.data / GSM8K, limit=args.problems)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        async with Solving(config) as solving:
            await solving.new_session("What is 1 + 1?", config)  # the engine starts outside the timings
            for level in (int(text) for text in args.levels.split(",")):
                results = Path(scratch) / f"concurrency-{level}.jsonl"
                started = time.monotonic()
                await run(items, config, results, level, solving=solving)
                rows.append((level, len(items), time.monotonic() - started, load_scores(results)))
    return rows


def table(rows: list[tuple[int, int, float, list]], args: argparse.Namespace) -> Table:
    view = Table(title=f"eval throughput: {args.problems} GSM8K problems, {args.branches} branches, "
                       f"max {args.max_tokens} tokens, seed {args.seed}; {args.endpoint or args.engine}")
    for column in ("concurrency", "problems/hour", "vs 1", "wall s", "accuracy", "tokens/problem", "tokens/s"):
        view.add_column(column, justify="right")
    base = None
    for level, count, wall, scores in rows:
        per_hour = count / wall * 3600
        base = base or per_hour
        tokens = sum(s.tokens for s in scores)
        view.add_row(str(level), f"{per_hour:.1f}", f"{per_hour / base:.2f}x", f"{wall:.0f}",
                     f"{sum(s.correct for s in scores) / max(len(scores), 1):.0%}",
                     f"{tokens / max(len(scores), 1):.0f}", f"{tokens / wall:.1f}")
    return view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=600)
    parser.add_argument("--levels", default="1,2,4")
    parser.add_argument("--seed", type=int, default=1, help="the seed of every problem's branch 0")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    try:
        rows = asyncio.run(measure(args))
    finally:
        stop_servers()
    Console().print(table(rows, args))


if __name__ == "__main__":
    main()
