"""`jupyter-qwq eval`'s progress: a bar with its ETA, the accuracy so far and the tokens/s."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class EvalProgress:
    """Shows each solved problem as a line above a bar; a context manager around the run.

    The accuracy counts every problem of the run that has a score, those of an earlier run that
    this one resumes included; the tokens/s only what this run generated.
    """

    def __init__(self, console: Console, todo: int, earlier: list[Any] = ()) -> None:
        self.console = console
        self.scores = list(earlier)
        self.tokens = 0
        self.started = time.monotonic()
        self.bar = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                            console=console)
        self.task = self.bar.add_task("eval", total=todo, stats=self._stats())

    def __enter__(self) -> EvalProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()

    def report(self, number: int, total: int, item: Any, result: Any) -> None:
        """evaluate.run's report: one line for the problem, then the bar moves on."""
        self.scores.append(result)
        self.tokens += result.tokens
        mark = "right" if result.correct else "wrong"
        late = ", out of time" if result.status == "timed_out" else ""
        self.bar.console.print(f"[{number}/{total}] {item.key}: {result.answer} (gold {item.gold}) {mark}"
                               f"{late}, {result.tokens} tokens, {result.elapsed:.1f} s", markup=False,
                               highlight=False)
        self.bar.update(self.task, advance=1, stats=self._stats())

    def _stats(self) -> str:
        if not self.scores:
            return ""
        right = sum(s.correct for s in self.scores)
        rate = self.tokens / max(time.monotonic() - self.started, 1e-9)
        return f"accuracy {right}/{len(self.scores)} = {right / len(self.scores):.1%} · {rate:,.0f} tokens/s"
