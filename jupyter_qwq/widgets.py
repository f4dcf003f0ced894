"""The live view of a solve in a notebook, with ipywidgets.

It is a function of the Session record, redrawn on solver events: at most a few times a second
per branch, each redraw batched in `hold_sync`. What it syncs stays small: the tail of each
branch's text, its latest code block and output; the full transcript stays in the record, which
is saved as the cell's output when the solve ends. Then the view shrinks to a summary.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable

import ipywidgets as w

from .events import Event
from .render import output_html
from .session import Branch, BranchStatus, Session, Step

REDRAW_EVERY = 0.3  # seconds between redraws while the branches stream
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
    """Header, vote panel, controls and the branch cards; call it with solver events.

    The cards are one HTML widget (a CSS grid), redrawn at most every REDRAW_EVERY seconds: a
    widget per branch would multiply the models saved into the notebook.
    """

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.session: Session | None = None
        self.started = time.monotonic()
        self._drawn = 0.0
        self._flush_pending = False
        self._finished = False
        self.redraws = 0
        self.header = w.HTML("<b>jupyter_qwq</b> · starting…")
        self.vote = w.HTMLMath("")
        self.layout_toggle = w.ToggleButtons(options=list(_GRID), value="stacked",
                                             style={"button_width": "110px"})
        self.show_thinking = w.Checkbox(value=False, description="thinking", indent=False)
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning",
                                    layout=w.Layout(display="" if on_stop else "none"))
        self._on_stop = on_stop
        self.stop_button.on_click(self._guarded(lambda _button: self._stop()))
        for control in (self.layout_toggle, self.show_thinking):
            control.observe(self._guarded(lambda _change: self._redraw()), names="value")
        self.message = w.HTML("")
        self.cards = w.HTML("")
        self.controls = w.HBox([self.layout_toggle, self.show_thinking, self.stop_button])
        self.widget = w.VBox([self.header, self.vote, self.controls, self.message, self.cards])

    def __call__(self, event: Event) -> None:
        self.session = event.session
        if event.kind == "started":
            self.started = time.monotonic()
        wait = REDRAW_EVERY - (time.monotonic() - self._drawn)
        if wait <= 0:
            self._redraw()
        elif not self._flush_pending:
            # Events come on the solver's loop: draw what is left once the interval has passed.
            self._flush_pending = True
            asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self._redraw()

    def _redraw(self) -> None:
        session = self.session
        if session is None or self._finished:
            return
        self.redraws += 1
        self._drawn = time.monotonic()
        with self.header.hold_sync(), self.vote.hold_sync(), self.cards.hold_sync():
            self.header.value = header_html(session, time.monotonic() - self.started)
            self.vote.value = vote_html(session)
            columns = _GRID[self.layout_toggle.value]
            cards = "".join(live_card_html(b, self.show_thinking.value) for b in session.branches)
            self.cards.value = f"<div style='display:grid;grid-template-columns:{columns};gap:6px'>{cards}</div>"

    def finish(self, session: Session, note: str = "") -> None:
        """Shrink to a summary: the full record is the cell's saved output from now on."""
        self._finished = True
        self.session = session
        with self.header.hold_sync(), self.vote.hold_sync(), self.cards.hold_sync():
            self.header.value = header_html(session, session.elapsed)
            self.vote.value = vote_html(session)
            self.message.value = f"<span style='color:#888'>{_e(note)}</span>" if note else ""
            self.cards.value = "".join(summary_card_html(b) for b in session.branches)
        retired = list(self.controls.children)
        self.controls.children = []
        for widget in retired:
            _close(widget)

    def _stop(self) -> None:
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        if self._on_stop is not None:
            self._on_stop()

    def _guarded(self, callback: Callable) -> Callable:
        """Errors in front-end callbacks are shown in the view, never lost."""

        def run(*args: object) -> None:
            try:
                callback(*args)
            except Exception as error:  # shown to the user, who can act on it
                self.message.value = (
                    f"<span style='color:#d62728'>{_e(type(error).__name__)}: {_e(error)}</span>"
                )

        return run


def _close(widget: w.Widget) -> None:
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None), widget):
        if isinstance(part, w.Widget):
            part.close()


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


def live_card_html(branch: Branch, thinking: bool = False) -> str:
    parts = [_card_title(branch)]
    texts = [s for s in branch.steps if s.kind == "text"]
    codes = [s for s in branch.steps if s.kind == "code"]
    if thinking and texts and texts[-1].reasoning:
        parts.append(
            "<div style='white-space:pre-wrap;color:#777;border-left:2px solid #ccc;padding-left:6px'>"
            f"{_e(_tail(texts[-1].reasoning, THINKING_TAIL))}</div>"
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
