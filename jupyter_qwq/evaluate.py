"""`jupyter-qwq eval`: solve every problem of a JSONL dataset and score the votes against gold.

Each line of the results file is one problem: its gold answer, whether the vote and any branch
were right, and the whole Session record. Problems already in the results file are skipped, so
an interrupted evaluation resumes where it stopped.

A time budget for the whole run is shared out as it goes, by AIMO-3's rule (TimeBudget): a
problem that runs out of its share is answered with the vote so far (status "timed_out"), and
problems not started when the budget is spent are left for the next run.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answers import equivalent
from .config import make_config
from .exceptions import ConfigError
from .session import Session
from .solving import Solving

PROBLEM_FIELDS = ("problem", "question", "query", "prompt")
ANSWER_FIELDS = ("answer", "gt", "final_answer", "solution_answer")


@dataclass
class Item:
    key: str
    problem: str
    gold: str


@dataclass
class Score:
    key: str
    gold: str
    answer: str | None
    correct: bool  # the vote's answer is the gold one
    any_correct: bool  # at least one branch found it (pass@k)
    tokens: int
    elapsed: float
    status: str
    record: dict[str, Any] = field(default_factory=dict)


def read_dataset(path: Path, problem_field: str | None = None, answer_field: str | None = None,
                 limit: int | None = None) -> list[Item]:
    """The problems of a JSONL file, with their gold answers (GSM8K's '#### 18' is understood)."""
    if not path.is_file():
        raise ConfigError(f"no dataset at {path}: give a JSONL file with one problem per line")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ConfigError(f"{path}:{number} is not a JSON object: each line must be one problem") from None
        problem = _field(row, problem_field, PROBLEM_FIELDS, path, number, "problem")
        gold = _gold(_field(row, answer_field, ANSWER_FIELDS, path, number, "answer"))
        key = str(row.get("idx", row.get("unique_id", row.get("id", number))))
        items.append(Item(key=key, problem=str(problem), gold=gold))
        if limit is not None and len(items) >= limit:
            break
    return items


def _field(row: dict, chosen: str | None, candidates: tuple[str, ...], path: Path, number: int, what: str) -> Any:
    names = (chosen,) if chosen else candidates
    for name in names:
        if name in row:
            return row[name]
    flag = "--problem-field" if what == "problem" else "--answer-field"
    raise ConfigError(f"{path}:{number} has none of the fields {', '.join(names)}; name the {what} field "
                      f"with {flag} (its fields: {', '.join(row)})")


def _gold(value: Any) -> str:
    text = str(value)
    return text.rsplit("####", 1)[1].strip().replace(",", "") if "####" in text else text.strip()


def score(item: Item, session: Session) -> Score:
    """The vote against gold, and whether any branch's voting answer was gold (pass@k)."""
    with_fallbacks = bool(session.config.get("vote_fallbacks", True))
    answers = [a for b in session.branches if (a := b.voting_answer(with_fallbacks)) is not None]
    return Score(
        key=item.key,
        gold=item.gold,
        answer=session.answer,
        correct=session.answer is not None and equivalent(session.answer, item.gold),
        any_correct=any(equivalent(a, item.gold) for a in answers),
        tokens=session.completion_tokens,
        elapsed=session.elapsed,
        status=session.status.value,
        record=session.to_dict(),
    )


def done_keys(results: Path) -> set[str]:
    if not results.is_file():
        return set()
    keys = set()
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            keys.add(str(json.loads(line)["key"]))
        except (ValueError, KeyError, TypeError):
            continue
    return keys


def load_scores(results: Path) -> list[Score]:
    scores = []
    for line in results.read_text(encoding="utf-8").splitlines() if results.is_file() else []:
        try:
            scores.append(Score(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return scores


def append_score(results: Path, result: Score) -> None:
    with results.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result.__dict__, ensure_ascii=False) + "\n")


def pending(items: list[Item], results: Path) -> Iterator[Item]:
    finished = done_keys(results)
    return (item for item in items if item.key not in finished)


@dataclass
class TimeBudget:
    """Seconds for a whole run, shared out as it goes (AIMO-3's rule, for P problems at once).

    A problem starting now may take clamp(time_left − reserve × ⌈after / P⌉, low, high) seconds,
    never more than time_left: `after` problems still wait to start behind it, and each of the P
    lanes keeps `reserve` seconds for each of its own. With nothing given, reserve = low = an even
    share (seconds × P / problems) and high = 3 even shares; AIMO-3 used 300, 300 and 900 s.
    """

    seconds: float
    low: float | None = None
    high: float | None = None
    reserve: float | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ConfigError(f"the time budget must be more than 0 seconds, not {self.seconds:g}")
        if self.low is not None and self.high is not None and not 0 < self.low <= self.high:
            raise ConfigError(f"a problem's time must be LOW:HIGH with 0 < LOW <= HIGH, not "
                              f"{self.low:g}:{self.high:g}")
        self.started = time.monotonic()

    def time_left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def share(self, problems: int, after: int, concurrency: int) -> float | None:
        """Seconds for the problem starting now, or None once the budget is spent."""
        left = self.time_left()
        if left < 1.0:
            return None
        even = self.seconds * concurrency / max(problems, 1)
        low = self.low if self.low is not None else even
        high = self.high if self.high is not None else 3 * even
        reserve = self.reserve if self.reserve is not None else low
        wanted = left - reserve * math.ceil(after / concurrency)
        return min(max(wanted, low), high, left)


def summary(scores: list[Score]) -> dict[str, float]:
    count = len(scores)
    if not count:
        return {"problems": 0}
    return {
        "problems": count,
        "accuracy (vote)": sum(s.correct for s in scores) / count,
        "pass@k (any branch)": sum(s.any_correct for s in scores) / count,
        "no answer": sum(s.answer is None for s in scores) / count,
        "out of time": sum(s.status == "timed_out" for s in scores) / count,
        "mean tokens": sum(s.tokens for s in scores) / count,
        "mean seconds": sum(s.elapsed for s in scores) / count,
    }


async def run(items: list[Item], config: Any, results: Path, concurrency: int = 1,
              solving: Solving | None = None,
              report: Callable[[int, int, Item, Score], None] | None = None,
              budget: TimeBudget | None = None) -> list[Item]:
    """Solve the problems not yet in `results`, `concurrency` at a time, appending each score.

    The problems share one engine and one kernel pool (`solving`, or one opened here), so an
    engine that batches (vLLM) serves all their branches at once. The first error stops the
    run; what was solved is already in `results`. With a `budget`, each problem's time limit
    is its share (never above the solve's own); the problems it left unstarted come back.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    if solving is None:
        async with Solving(config) as own:
            return await run(items, config, results, concurrency, own, report, budget)
    todo = list(pending(items, results))
    gate = asyncio.Semaphore(concurrency)
    finished = started = 0
    unstarted: list[Item] = []

    async def solve_one(item: Item) -> None:
        nonlocal finished, started
        async with gate:
            chosen = config
            if budget is not None:
                share = budget.share(len(todo), len(todo) - started - 1, concurrency)
                if share is None:
                    unstarted.append(item)
                    return
                if not config.time_limit or share < config.time_limit:
                    chosen = make_config(config, time_limit=share)
            started += 1
            session = await solving.run(await solving.new_session(item.problem, chosen), chosen)
        result = score(item, session)
        append_score(results, result)
        finished += 1
        if report is not None:
            report(finished, len(todo), item, result)

    tasks = [asyncio.create_task(solve_one(item)) for item in todo]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return unstarted
