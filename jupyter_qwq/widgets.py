"""The live view of a solve in a notebook, with ipywidgets.

It is a function of the Session record, redrawn on solver events: at most a few times a second
per branch, each redraw batched in `hold_sync`. What it syncs stays small: the tail of each
branch's text, its latest code block and output; the full transcript stays in the record, which
is saved as the cell's output when the solve ends. Then the view shrinks to a summary.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import ipywidgets as w

from .events import Event
from .render import output_html
from .session import Branch, BranchStatus, Session, Step

REDRAW_EVERY = 0.3  # seconds between redraws of one branch while it streams
TEXT_TAIL = 1200  # characters of a branch's latest text shown live
THINKING_TAIL = 600
CODE_HEAD = 800

_COLOURS = {
    BranchStatus.PENDING: "#888", BranchStatus.RUNNING: "#1f77b4", BranchStatus.EXECUTING: "#9467bd",
    BranchStatus.ANSWERED: "#2ca02c", BranchStatus.NO_ANSWER: "#d08000", BranchStatus.STOPPED: "#888",
    BranchStatus.FAILED: "#d62728",
}
_GRID = {"stacked": "1fr", "side by side": "repeat(auto-fill, minmax(340px, 1fr))"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class LiveView:
    """Header, vote panel and one card per branch; call it with solver events."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.session: Session | None = None
        self.started = time.monotonic()
        self._drawn: dict[int, float] = {}
        self._header_drawn = 0.0
        self.header = w.HTML("<b>jupyter_qwq</b> · starting…")
        self.vote = w.HTMLMath("")
        self.layout_toggle = w.ToggleButtons(options=list(_GRID), value="stacked", style={"button_width": "110px"})
        self.layout_toggle.observe(self._guarded(self._relayout), names="value")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning",
                                    layout=w.Layout(display="" if on_stop else "none"))
        self._on_stop = on_stop
        self.stop_button.on_click(self._guarded(lambda _button: self._stop()))
        self.message = w.HTML("")
        self.cards = w.GridBox([], layout=w.Layout(grid_template_columns=_GRID["stacked"], grid_gap="6px"))
        self.widget = w.VBox([self.header, self.vote, w.HBox([self.layout_toggle, self.stop_button]),
                              self.message, self.cards])

    # -- events -------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        session = self.session = event.session
        if event.kind == "started":
            self.started = time.monotonic()
            self.cards.children = [w.HTML() for _ in session.branches]
        now = time.monotonic()
        if event.branch is not None and self._due(event, now):
            self._drawn[event.branch] = now
            self._draw_card(session.branches[event.branch])
        if event.kind in ("vote", "finished", "started") or now - self._header_drawn >= REDRAW_EVERY:
            self._header_drawn = now
            with self.header.hold_sync(), self.vote.hold_sync():
                self.header.value = header_html(session, now - self.started)
                self.vote.value = vote_html(session)

    def _due(self, event: Event, now: float) -> bool:
        if event.kind != "delta":
            return True
        return now - self._drawn.get(event.branch or 0, 0.0) >= REDRAW_EVERY

    def _draw_card(self, branch: Branch) -> None:
        if branch.index < len(self.cards.children):
            card = self.cards.children[branch.index]
            card.value = live_card_html(branch)

    # -- the end --------------------------------------------------------------------------------

    def finish(self, session: Session, note: str = "") -> None:
        """Shrink to a summary: the full record is the cell's saved output from now on."""
        self.session = session
        with self.header.hold_sync():
            self.header.value = header_html(session, session.elapsed)
            self.vote.value = vote_html(session)
            self.stop_button.layout.display = "none"
            self.layout_toggle.layout.display = "none"
            self.message.value = f"<span style='color:#888'>{_e(note)}</span>" if note else ""
            for branch, card in zip(session.branches, self.cards.children):
                card.value = summary_card_html(branch)

    # -- controls ---------------------------------------------------------------------------

    def _stop(self) -> None:
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        if self._on_stop is not None:
            self._on_stop()

    def _relayout(self, change: dict) -> None:
        self.cards.layout.grid_template_columns = _GRID[change["new"]]

    def _guarded(self, callback: Callable) -> Callable:
        """Errors in front-end callbacks are shown in the view, never lost."""

        def run(*args: object) -> None:
            try:
                callback(*args)
            except Exception as error:  # shown to the user, who can act on it
                self.message.value = f"<span style='color:#d62728'>{_e(type(error).__name__)}: {_e(error)}</span>"

        return run


def header_html(session: Session, elapsed: float) -> str:
    done = sum(b.status.finished for b in session.branches)
    running = sum(b.status in (BranchStatus.RUNNING, BranchStatus.EXECUTING) for b in session.branches)
    stopped = sum(b.status is BranchStatus.STOPPED for b in session.branches)
    tokens = session.completion_tokens
    rate = tokens / elapsed if elapsed > 0 else 0.0
    return (
        f"<b>jupyter_qwq</b> · {_e(session.engine.kind)} · {_e(session.engine.model)} · "
        f"{elapsed:.1f} s · {tokens} tokens ({rate:.1f}/s) · "
        f"{done}/{len(session.branches)} done, {running} running, {stopped} stopped · {_e(session.status.value)}"
    )


def vote_html(session: Session) -> str:
    vote = session.vote
    if not vote.tally:
        return "<span style='color:#888'>no answer yet</span>"
    total = sum(item.count for item in vote.tally)
    rows = "".join(
        f"<div><span style='display:inline-block;width:{int(200 * item.count / total)}px;height:10px;"
        f"background:#4a90d9;margin-right:6px'></span>{item.count} × <code>{_e(item.answer)}</code></div>"
        for item in vote.tally[:8]
    )
    state = "decided early" if vote.decided_early else ("decided" if session.status.value != "running" else "voting")
    leader = _e(vote.answer)
    return (
        f"<div>Leading answer: ${leader}$ · agreement {vote.agreement:.0%} · {state}"
        f"{' · tie' if vote.tie else ''}</div>{rows}"
    )


def _card_title(branch: Branch) -> str:
    answer = f" · <code>{_e(branch.answer)}</code>" if branch.answer is not None else ""
    colour = _COLOURS[branch.status]
    return (
        f"<b>Branch {branch.index}</b> · {_e(branch.prompt)} · "
        f"<span style='color:{colour}'>{_e(branch.status.value)}</span>{answer} · "
        f"{branch.completion_tokens} tokens"
    )


def live_card_html(branch: Branch) -> str:
    parts = [_card_title(branch)]
    texts = [s for s in branch.steps if s.kind == "text"]
    codes = [s for s in branch.steps if s.kind == "code"]
    if texts and texts[-1].reasoning:
        parts.append(
            "<details><summary>thinking</summary><div style='white-space:pre-wrap;color:#777'>"
            f"{_e(_tail(texts[-1].reasoning, THINKING_TAIL))}</div></details>"
        )
    if codes:
        parts.append(_code_html(codes[-1], len(codes)))
    if texts and texts[-1].text:
        parts.append(f"<div style='white-space:pre-wrap'>{_e(_tail(texts[-1].text, TEXT_TAIL))}</div>")
    if branch.error:
        parts.append(f"<div style='color:#d62728'>{_e(branch.error)}</div>")
    return f"<div style='border:1px solid #ccc;border-radius:4px;padding:4px 8px'>{''.join(parts)}</div>"


def _code_html(step: Step, number: int) -> str:
    code = step.code if len(step.code) <= CODE_HEAD else step.code[:CODE_HEAD] + "\n…"
    state = step.execution or "running…"
    outputs = "".join(output_html(o) for o in step.outputs[:4])
    return (
        f"<div style='color:#888'>code block {number} · {_e(state)}</div>"
        f"<pre style='margin:2px 0;white-space:pre-wrap'>{_e(code)}</pre>{outputs}"
    )


def summary_card_html(branch: Branch) -> str:
    codes = sum(s.kind == "code" for s in branch.steps)
    return f"<div>{_card_title(branch)} · {codes} code block(s) · {branch.elapsed:.1f} s</div>"


def _tail(text: str, size: int) -> str:
    return text if len(text) <= size else "…" + text[-size:]
