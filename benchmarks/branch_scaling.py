"""What more branches buy: maj@m, confidence-weighted@m and pass@m for m = 1, 2, 4, ... k,
subsampled from recorded runs of k branches each run to its end.

For every problem and every m, each of the C(k, m) subsets of its branches is voted as the solver
votes (groups by mathematical equivalence; `majority`, or `weighted` by a DeepConf confidence
score), and the expected accuracy over the subsets is reported: a tie between groups counts as
the right group's share of the tie, since which side the solver picks depends on which branch
ended first. pass@m is the chance that some branch of the subset is right (the ceiling of any
verifier that picks one branch). "default" is the solve as the product runs it with m branches:
branch 0 greedy (when the run has one) and m − 1 of the sampled ones, a tie going to the group of
the lowest-numbered branch, as the solver breaks it (its lossless stop never changes the
answer). Tokens are m × the problem's mean tokens per branch. With
`--greedy FILE` (a `--branches 1 --temperature 0` results file of the same problems) one greedy
answer is printed on the same problems.

    python benchmarks/branch_scaling.py benchmarks/data/gsm8k-0-39-k16.jsonl.gz [--greedy G.jsonl]
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from functools import lru_cache
from itertools import combinations
from math import comb
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jupyter_qwq.answers import equivalent
from jupyter_qwq.confidence import DEFAULT_WINDOW, decode
from jupyter_qwq.decisions.scores import confidence_scores
from jupyter_qwq.session import Session

MEASURE = "bottom_10"  # the confidence score the weighted column uses


@lru_cache(maxsize=100_000)
def _same(a: str, b: str) -> bool:
    return equivalent(a, b)


class Problem:
    """One recorded run reduced to what voting needs: each branch's answer group (None: no
    voting answer), its confidence score, its tokens, and which group is gold."""

    def __init__(self, row: dict, window: int) -> None:
        session = Session.from_dict(row["record"])
        with_fallbacks = bool(session.config.get("vote_fallbacks", False))
        representatives: list[str] = []
        self.groups: list[int | None] = []
        for branch in session.branches:
            answer = branch.voting_answer(with_fallbacks)
            if answer is None:
                self.groups.append(None)
                continue
            found = next((i for i, r in enumerate(representatives) if _same(r, answer)), None)
            if found is None:
                representatives.append(answer)
                found = len(representatives) - 1
            self.groups.append(found)
        self.right = {i for i, r in enumerate(representatives) if _same(r, str(row["gold"]))}
        self.scores = []
        for branch in session.branches:
            values = [v for s in branch.steps if s.kind == "text" for v in decode(s.confidence)]
            self.scores.append(confidence_scores(values, window).get(MEASURE) or 0.0)
        self.tokens = [b.completion_tokens for b in session.branches]
        greedy = [b.index for b in session.branches if b.sampling.get("temperature") == 0]
        self.greedy = greedy[0] if greedy else None

    def expected(self, m: int) -> dict[str, float]:
        """Expected majority, weighted and pass accuracy over every m-subset of the branches."""
        k = len(self.groups)
        totals = Counter()
        for subset in combinations(range(k), m):
            totals["majority"] += self._share(subset, weighted=False)
            totals["weighted"] += self._share(subset, weighted=True)
            totals["pass"] += any(self.groups[i] in self.right for i in subset)
        n = comb(k, m)
        expected = {name: value / n for name, value in totals.items()}
        expected["default"] = self._default(m)
        return expected

    def _default(self, m: int) -> float:
        """The product's own m-branch solve: the greedy branch and m − 1 sampled, ties to the
        group of the lowest-numbered branch (with no greedy branch: any m, as for majority)."""
        if self.greedy is None:
            subsets = list(combinations(range(len(self.groups)), m))
        else:
            others = [i for i in range(len(self.groups)) if i != self.greedy]
            subsets = [(self.greedy, *rest) for rest in combinations(others, m - 1)]
        return sum(self._winner(subset) in self.right for subset in subsets) / len(subsets)

    def _winner(self, subset: tuple[int, ...]) -> int | None:
        count: Counter = Counter(self.groups[i] for i in subset if self.groups[i] is not None)
        if not count:
            return None
        first = {g: min(i for i in subset if self.groups[i] == g) for g in count}
        return min(count, key=lambda g: (-count[g], first[g]))

    def _share(self, subset: tuple[int, ...], weighted: bool) -> float:
        weight: Counter = Counter()
        for i in subset:
            if self.groups[i] is not None:
                weight[self.groups[i]] += self.scores[i] if weighted else 1
        if not weight:
            return 0.0
        top = max(weight.values())
        leaders = [g for g, w in weight.items() if w == top]
        return sum(g in self.right for g in leaders) / len(leaders)


def load(paths: list[Path], window: int) -> list[Problem]:
    problems = []
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                statuses = {b["status"] for b in row["record"]["branches"]}
                if statuses <= {"answered", "no_answer"}:  # every branch ran to its end
                    problems.append(Problem(row, window))
    return problems


def greedy_accuracy(path: Path, keys: set[str]) -> tuple[float, int]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    chosen = [r for r in rows if str(r["key"]) in keys]
    return sum(bool(r["correct"]) for r in chosen) / max(1, len(chosen)), len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="eval results files (.jsonl or .jsonl.gz)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="confidence window in tokens")
    parser.add_argument("--greedy", type=Path, default=None, help="a greedy results file of the same problems")
    args = parser.parse_args()
    console = Console(width=120)
    problems = load(args.results, args.window)
    if not problems:
        raise SystemExit("no run with every branch to its end in those files")
    k = min(len(p.groups) for p in problems)
    problems = [p for p in problems if len(p.groups) == k]
    title = f"{len(problems)} problems, subsets of {k} branches each run to its end"
    if args.greedy:
        keys = {str(json.loads(line)["key"]) for path in args.results
                for line in (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8")}
        accuracy, count = greedy_accuracy(args.greedy, keys)
        title += f"; one greedy answer: {accuracy:.1%} ({count} problems)"
    out = Table(title=title)
    for column in ("branches", "default (greedy + m−1)", "majority", f"weighted by {MEASURE}", "pass@m",
                   "tokens/problem"):
        out.add_column(column, justify="right")
    m = 1
    while m <= k:
        rows = [p.expected(m) for p in problems]
        tokens = sum(m * sum(p.tokens) / k for p in problems) / len(problems)
        out.add_row(str(m), *(f"{sum(r[c] for r in rows) / len(rows):.1%}"
                                       for c in ("default", "majority", "weighted", "pass")),
                    f"{tokens:,.0f}")
        m = m * 2 if m * 2 <= k or m == k else k
    console.print(out)


if __name__ == "__main__":
    main()
