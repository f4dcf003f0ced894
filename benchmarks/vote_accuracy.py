"""maj@8 on real model output: the Qwen2.5-Math harness's vote against jupyter_qwq's.

    python benchmarks/vote_accuracy.py [--data PATH]

PATH is math_cot_100.jsonl (100 MATH problems x 8 sampled completions, with the harness's
extracted answers `pred`, grades `score` and the gold `gt`); by default it is read from
../shared/data next to the repository.

- harness maj@8: the most common `pred` string (first seen on ties), graded by its `score`.
- jupyter_qwq maj@8: our extraction of each `response`, our equivalence vote, graded by
  `equivalent(answer, gt)`; and, as a cross-check with the harness's own grader, by the
  `score` of the winning group's first branch.
- pass@1: the mean `score` over all responses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jupyter_qwq.answers import equivalence
from jupyter_qwq.answers import equivalent, extract_answer, vote

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "qwen25math"
    / "eval_rm_maj_example"
    / "math_cot_100.jsonl"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="math_cot_100.jsonl")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]

    harness_right = ours_right = ours_right_by_score = differ = 0
    extract_times, cold_times, warm_times = [], [], []
    differences = []
    for row in rows:
        top = Counter(row["pred"]).most_common(1)[0][0]
        harness_ok = bool(row["score"][row["pred"].index(top)])

        started = time.perf_counter()
        found = [extract_answer(r) for r in row["response"]]
        extract_times.append(time.perf_counter() - started)
        branch_answers = [f.answer if f else None for f in found]

        equivalence._equivalent_normalized.cache_clear()  # cold: every comparison parsed afresh
        equivalence._parse.cache_clear()
        started = time.perf_counter()
        result = vote(branch_answers)
        cold_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        vote(branch_answers)
        warm_times.append(time.perf_counter() - started)

        ours_ok = result.answer is not None and equivalent(result.answer, row["gt"])
        ours_ok_by_score = result.answer is not None and bool(
            row["score"][result.tally[0].branches[0]]
        )
        harness_right += harness_ok
        ours_right += ours_ok
        ours_right_by_score += ours_ok_by_score
        if harness_ok != ours_ok:
            differ += 1
            differences.append((row["idx"], row["gt"], top, result.answer))

    n = len(rows)
    pass_at_1 = statistics.mean(s for row in rows for s in row["score"])
    console = Console()
    table = Table(title=f"maj@8 on {args.data.name} ({n} problems x 8 completions)")
    table.add_column("method")
    table.add_column("accuracy", justify="right")
    table.add_row("pass@1 (mean harness score)", f"{pass_at_1:.1%}")
    table.add_row("harness maj@8 (Counter over pred)", f"{harness_right / n:.1%}")
    table.add_row("jupyter_qwq maj@8 (graded by equivalent vs gt)", f"{ours_right / n:.1%}")
    table.add_row("jupyter_qwq maj@8 (graded by harness score)", f"{ours_right_by_score / n:.1%}")
    console.print(table)
    console.print(f"problems where harness and jupyter_qwq maj@8 differ in correctness: {differ}")
    for idx, gt, theirs, ours in differences:
        console.print(f"  problem {idx}: gt={gt!r} harness={theirs!r} ours={ours!r}")

    timing = Table(title="time per problem (8 branches)")
    timing.add_column("step")
    timing.add_column("median", justify="right")
    timing.add_column("max", justify="right")
    for name, values in (
        ("extract_answer x 8", extract_times),
        ("vote, cold cache", cold_times),
        ("vote, warm cache", warm_times),
    ):
        timing.add_row(name, _ms(statistics.median(values)), _ms(max(values)))
    console.print(timing)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


if __name__ == "__main__":
    main()
