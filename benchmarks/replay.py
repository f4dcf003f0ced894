"""Proof by replay: every decision policy, replayed offline on recorded runs.

A policy is a score × a vote × a stop rule (jupyter_qwq/decisions). On runs where every branch
ran to its end (`--no-early-stop`, with per-token confidence), each policy is replayed exactly
as the solver would have decided: the branches end in their recorded order, the vote is taken
after each (weighed by the policy's scores, filtered by its keep-top), and the stop rule is
asked. DeepConf's online mode is replayed as the solver runs it: the warm-up branches first; then
the others, each cut at the first token where its last `window` tokens' mean falls below the
threshold the warm-up set; a cut branch does not vote. Tokens are counted exactly: the tokens
each branch had written when the solve stopped (each token's time from its step's timing).

Baseline: majority over every branch run to its end (maj@k). Printed as one table: accuracy
(the answer against gold, by mathematical equivalence), answered share, tokens per problem and
tokens saved; and drawn as one PNG (accuracy against tokens).

    python benchmarks/replay.py RESULTS.jsonl [MORE.jsonl ...] [--window 2048 --window 64]
        [--warmup N] [--plot benchmarks/data/replay.png]

RESULTS are `jupyter-qwq eval` (or benchmarks/accuracy.py) results files. The set the issue
asks for, 80 problems × 16 branches each run to its end with confidence, is recorded (for hours
on vLLM's CPU build; `eval` resumes an interrupted run) with:

    jupyter-qwq eval ../shared/data/qwen25math/gsm8k/test.jsonl --limit 40 --engine vllm \\
        --branches 16 --no-early-stop --max-tokens 600 --results gsm8k16.jsonl
    jupyter-qwq eval ../shared/data/simplerl_reason/math500/test.jsonl --limit 40 --engine vllm \\
        --branches 16 --no-early-stop --max-tokens 600 --results math500x16.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jupyter_qwq.answers import equivalent
from jupyter_qwq.confidence import DEFAULT_WINDOW, decode
from jupyter_qwq.decisions.policy import Policy
from jupyter_qwq.decisions.scores import confidence_scores
from jupyter_qwq.decisions.stops import first_cut, should_stop, threshold
from jupyter_qwq.decisions.votes import tally
from jupyter_qwq.session import Branch, Session, Vote


@dataclass
class Replayed:
    answer: str | None
    tokens: int
    stopped_at: float  # seconds into the solve
    cut: int  # branches cut for low confidence


class Timeline:
    """When each token of a branch was written (linear within a step), and its confidences (one
    per token, but for the odd token where the server's count and the log-probabilities differ)."""

    def __init__(self, branch: Branch) -> None:
        self.times: list[float] = []
        self.confidences: list[float] = []
        for step in branch.steps:
            if step.kind != "text":
                continue
            values = decode(step.confidence)
            count = step.tokens or len(values)  # the server's count, as the record's cost
            self.times += [step.started + step.duration * (i + 1) / count for i in range(count)]
            self.confidences += values
        self.end = branch.ended

    def written_by(self, moment: float) -> int:
        return bisect_right(self.times, moment)

    def time_of(self, tokens: int) -> float:
        return self.times[tokens - 1] if tokens else 0.0


def branch_score(branch: Branch, policy: Policy, timeline: Timeline) -> float | None:
    if policy.score == "confidence":
        return confidence_scores(timeline.confidences, policy.window).get(policy.measure)
    if policy.score in ("prm", "critic"):  # as recorded by a run that scored them
        return branch.score
    return None


@lru_cache(maxsize=200_000)
def _tally(answers: tuple, scores: tuple, method: str, keep_top: float) -> Vote:
    return tally(dict(answers), dict(scores), method, keep_top)


class Schedule:
    """When a branch ends under a policy, and how many tokens it has written at a moment."""

    def __init__(self, line: Timeline, cut: int | None, start: float | None = None) -> None:
        self.line, self.cut, self.start = line, cut, start
        length = len(line.times) if cut is None else cut
        # recorded clock: seconds (the run's own timing); token clock: tokens since the solve began
        self.end = (line.end if cut is None else line.time_of(cut)) if start is None else start + length
        self.length = length

    def written_by(self, moment: float) -> int:
        if self.start is None:
            return min(self.line.written_by(moment), self.length)
        return int(min(max(0.0, moment - self.start), self.length))


def replay(session: Session, policy: Policy) -> Replayed:
    """What `policy` would have decided, and spent, on a run whose branches all ran to the end.

    Stop rules without a cut follow the recorded timing (the branches ran concurrently). The
    confidence stop runs as the solver does: the warm-up branches first, the others once it has
    ended, cut from their first full window on; there the clock counts tokens (streams batched
    together advance at about the same rate).
    """
    with_fallbacks = bool(session.config.get("vote_fallbacks", False))
    lines = {b.index: Timeline(b) for b in session.branches}
    answers = {b.index: b.voting_answer(with_fallbacks) for b in session.branches}
    scores = {b.index: branch_score(b, policy, lines[b.index]) for b in session.branches}
    warmup = [b.index for b in session.branches[: policy.warmup]]
    schedules = {i: Schedule(line, None) for i, line in lines.items()}
    if policy.cuts and warmup:
        limit = threshold((confidence_scores(lines[i].confidences, policy.window).get("lowest_group")
                           for i in warmup), policy.percentile)
        schedules = {i: Schedule(lines[i], None, 0.0) for i in warmup}
        later_start = max(len(lines[i].times) for i in warmup)
        for b in session.branches[policy.warmup:]:
            at = None if limit is None else first_cut(lines[b.index].confidences, policy.window, limit)
            schedules[b.index] = Schedule(lines[b.index], at, later_start)
            if at is not None:
                answers[b.index] = None  # a cut branch does not vote
    order = sorted(schedules, key=lambda i: (schedules[i].end, i))
    ended: set[int] = set()
    result, stopped_at = Vote(), max((s.end for s in schedules.values()), default=0.0)
    for position, index in enumerate(order, 1):
        ended.add(index)
        result = _tally(tuple(sorted((i, answers[i]) for i in ended)),
                        tuple(sorted((i, scores[i]) for i in ended)), policy.vote, policy.keep_top)
        if should_stop(policy, result, len(order) - position, all(i in ended for i in warmup)):
            stopped_at = schedules[index].end
            break
    tokens = sum(s.written_by(stopped_at) for s in schedules.values())
    cut = sum(s.cut is not None and s.end <= stopped_at for s in schedules.values())
    return Replayed(result.answer, tokens, stopped_at, cut)


def policies(branches: int, window: int, warmup: int, recorded: Iterable[str] = ()) -> dict[str, Policy]:
    """Every policy of the table, by name; the first is the baseline. `recorded`: the scores
    (prm, critic) the runs recorded for their branches, replayed as weights too."""
    base = Policy(window=window, warmup=warmup)
    conf = replace(base, score="confidence", vote="weighted")
    agree = max(2, branches // 2)
    found = {
        f"majority@{branches}, every branch to its end": replace(base, stop="none"),
        "lossless stop (today's default)": replace(base, stop="lossless"),
        f"agree:{agree} (half of k, as AIMO-3: 4 of 8)": replace(base, stop=f"agree:{agree}"),
        f"agree:{agree}, confidence-weighted": replace(conf, stop=f"agree:{agree}"),
    }
    if agree > 4:  # AIMO-3's own count, 4 agreeing, beside half of k
        found["agree:4 (AIMO-3's count)"] = replace(base, stop="agree:4")
        found["agree:4, confidence-weighted"] = replace(conf, stop="agree:4")
    for measure in ("lowest_group", "tail", "bottom_10", "mean"):
        found[f"weighted by {measure}"] = replace(conf, measure=measure, stop="none")
    found["best branch by lowest_group"] = replace(conf, vote="best", stop="none")
    found["DeepConf-low offline (keep top 10%)"] = replace(conf, keep_top=10, stop="none")
    found["DeepConf-high offline (keep top 90%)"] = replace(conf, keep_top=90, stop="none")
    found[f"DeepConf-low online (warm-up {warmup}, p90)"] = replace(conf, stop="confidence", percentile=90)
    found[f"DeepConf-high online (warm-up {warmup}, p10)"] = replace(conf, stop="confidence", percentile=10)
    found["DeepConf-low online + keep top 10%"] = replace(conf, stop="confidence", percentile=90, keep_top=10)
    for score in sorted(recorded):
        found[f"weighted by recorded {score}"] = replace(base, score=score, vote="weighted", stop="none")
        found[f"best branch by recorded {score}"] = replace(base, score=score, vote="best", stop="none")
    return found


@dataclass
class Run:
    key: str
    gold: str
    session: Session


def load_runs(paths: Iterable[Path], console: Console) -> dict[str, list[Run]]:
    """The recorded runs whose branches all ran to their end, by branch count (runs of different
    problems with the same k make one table)."""
    runs: dict[str, list[Run]] = {}
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        kept = skipped = 0
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                session = Session.from_dict(row["record"])
                if not all(b.status.value in ("answered", "no_answer") for b in session.branches):
                    skipped += 1  # stopped early, or failed: not every branch ran to its end
                    continue
                runs.setdefault(f"k={len(session.branches)}", []).append(Run(row["key"], row["gold"], session))
                kept += 1
        console.print(f"{path}: {kept} runs with every branch to its end, {skipped} left out")
    return runs


def measure(runs: list[Run], policy: Policy) -> dict[str, float]:
    right = answered = tokens = cut = 0
    for run in runs:
        outcome = replay(run.session, policy)
        answered += outcome.answer is not None
        right += outcome.answer is not None and _correct(outcome.answer, run.gold)
        tokens += outcome.tokens
        cut += outcome.cut
    n = len(runs)
    return {"accuracy": right / n, "answered": answered / n, "tokens": tokens / n, "cut": cut / n}


@lru_cache(maxsize=100_000)
def _correct(answer: str, gold: str) -> bool:
    return equivalent(answer, gold)


def table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    out = Table(title=title)
    for column in ("policy", "accuracy", "answered", "tokens/problem", "tokens saved", "cut/problem"):
        out.add_column(column, justify="left" if column == "policy" else "right")
    baseline = next(iter(rows.values()))
    for name, row in rows.items():
        saved = 1 - row["tokens"] / baseline["tokens"] if baseline["tokens"] else 0.0
        out.add_row(name, f"{row['accuracy']:.1%}", f"{row['answered']:.0%}", f"{row['tokens']:,.0f}",
                    f"{saved:.0%}", f"{row['cut']:.2f}")
    return out


def plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(7.5 * len(results), 6), squeeze=False)
    for ax, (title, rows) in zip(axes[0], results.items(), strict=True):
        for number, (name, row) in enumerate(rows.items()):
            ax.scatter(row["tokens"], row["accuracy"] * 100, marker="*" if number == 0 else "o",
                       s=160 if number == 0 else 50)
            ax.annotate(f"{number}", (row["tokens"], row["accuracy"] * 100), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("tokens per problem")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    legend = "\n".join(f"{n}: {name}" for n, name in enumerate(next(iter(results.values()))))
    figure.text(0.01, 0.01, legend, fontsize=7, family="monospace", va="bottom")
    figure.subplots_adjust(bottom=0.42)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="eval results files (.jsonl or .jsonl.gz)")
    parser.add_argument("--window", type=int, action="append", default=[],
                        help=f"confidence window in tokens; repeat for several (default {DEFAULT_WINDOW}, DeepConf's)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="warm-up branches of the online policies (default: k/8, at least 2)")
    parser.add_argument("--plot", type=Path, default=None, help="write the PNG here")
    args = parser.parse_args()
    console = Console(width=120)
    results = {}
    for runs in load_runs(args.results, console).values():
        k = len(runs[0].session.branches)
        warmup = args.warmup or max(2, k // 8)
        for window in args.window or [DEFAULT_WINDOW]:
            recorded = {r.session.config.get("score") for r in runs} & {"prm", "critic"}
            rows = {name: measure(runs, policy)
                    for name, policy in policies(k, window, warmup, recorded).items()}
            title = f"{len(runs)} problems × {k} branches, every branch to its end; window {window}"
            console.print(table(title, rows))
            results[title] = rows
    if args.plot and results:
        plot(results, args.plot)
        console.print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
