"""Terminal views of a Session: live progress while it runs, and the summary at the end."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..events import Event
from ..session import Branch, BranchStatus, Session
from .facts import (
    answer_or_none,
    branch_answer,
    confidence_text,
    dropped_text,
    fixed,
    percent,
    reward_colour,
    score_text,
    status_line,
    stop_text,
    vote_notes,
    weight_text,
)

_STATUS_STYLE = {
    BranchStatus.PENDING: "dim",
    BranchStatus.RUNNING: "cyan",
    BranchStatus.EXECUTING: "magenta",
    BranchStatus.ANSWERED: "green",
    BranchStatus.NO_ANSWER: "yellow",
    BranchStatus.STOPPED: "dim",
    BranchStatus.FAILED: "red",
}


def branch_table(session: Session) -> Table:
    """A row per branch; the score, why it stopped and its step rewards only when some branch
    has them (a default solve shows none of these columns)."""
    scores = [score_text(b, session) for b in session.branches]
    whys = ["; ".join(filter(None, (stop_text(b, session), dropped_text(b, session)))) for b in session.branches]
    rewards = [step_chips(b) for b in session.branches]
    columns = ["branch", "prompt", "status", "rounds", "tokens", "confidence", "answer"]
    extra = [(name, values) for name, values in (("score", scores), ("why it stopped", whys), ("step rewards", rewards))
             if any(values)]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns + [name for name, _ in extra]:
        table.add_column(column, justify="right" if column in ("branch", "rounds", "tokens") else "left",
                         no_wrap=column in ("confidence", "step rewards"))
    for n, b in enumerate(session.branches):
        answer = branch_answer(b)
        status = Text(b.status.value, style=_STATUS_STYLE[b.status])
        confidence = confidence_text(b).removeprefix("confidence ") or "–"
        table.add_row(str(b.index), b.prompt, status, str(b.rounds), str(b.completion_tokens),
                      confidence, answer, *(values[n] for _, values in extra))
    return table


def step_chips(branch: Branch) -> Text:
    """The branch's step rewards as coloured figures, red (0) to green (1)."""
    chips = Text()
    for score in (s.score for s in branch.step_scores):
        chips.append(f"{fixed(score, 2)} ", style=f"bold {reward_colour(score)}")
    return chips



def tally_line(session: Session) -> Text:
    if not session.vote.tally:
        return Text("vote: no answer yet", style="dim")
    parts = [f"{item.answer} ×{item.count}" + (f" ({weight_text(item, session)})" if weight_text(item, session) else "")
             for item in session.vote.tally[:5]]
    return Text("vote: " + "   ".join(parts) + f"   (agreement {percent(session.vote.agreement)})")


def header(session: Session, elapsed: float) -> Text:
    return Text(status_line(session, elapsed), style="bold")


class LiveProgress:
    """A rich Live display fed by solver events, redrawn at most a few times a second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.session: Session | None = None
        self.started = time.monotonic()
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self._render, transient=True)

    def __call__(self, event: Event) -> None:
        self.session = event.session
        if event.kind == "started":
            self.started = time.monotonic()
            self.live.start()
        elif event.kind == "finished":
            self.live.stop()

    def _render(self) -> Group | Text:
        if self.session is None:
            return Text("starting…")
        elapsed = time.monotonic() - self.started
        return Group(header(self.session, elapsed), branch_table(self.session), tally_line(self.session))

    def stop(self) -> None:
        self.live.stop()


def print_summary(console: Console, session: Session) -> None:
    console.print(header(session, session.elapsed))
    console.print(branch_table(session))
    console.print(tally_line(session))
    for note in vote_notes(session)[1:]:  # the tally line gave the agreement
        console.print(note, style="dim")
    answer = answer_or_none(session.answer)
    console.print(Text(f"answer: {answer}", style="bold green" if session.answer else "bold yellow"))


def print_eval_summary(console: Console, scores: list, results: object) -> None:
    from ..evaluate import summary

    table = Table(title=f"evaluation ({results})", box=None, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in summary(scores).items():
        shown = f"{value:.1%}" if name.startswith(("accuracy", "pass", "no answer")) else f"{value:,.1f}"
        table.add_row(name, str(value) if name == "problems" else shown)
    console.print(table)
