"""The live view of a solve in a notebook, with ipywidgets.

It is a function of the Session record, redrawn on solver events: at most a few times a second
per branch, each redraw batched in `hold_sync`. What it syncs stays small: the tail of each
branch's text, its latest code block and output; the full transcript stays in the record, which
is saved as the cell's output when the solve ends. Then the view is closed.

The cards are an HTMLMath widget: the model's text is rendered from markdown in Python (prose.py),
its math left for the front end's MathJax, its code highlighted with Pygments.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable

import ipywidgets as w

from ..events import Event
from ..session import Branch, BranchStatus, Session, Step
from .facts import (
    CONFIDENCE_HELP,
    FALLBACK_HELP,
    confidence_text,
    dropped_text,
    fixed,
    is_fallback,
    prompt_help,
    reward_colour,
    score_text,
    status_line,
    step_reward_title,
    stop_text,
    vote_notes,
    without_run_code,
)
from .html import output_html, tally_table
from .prose import code_html, prose_html

REDRAW_EVERY = 0.3  # seconds between redraws while the branches stream
TEXT_TAIL = 1200  # characters of a branch's latest text shown live
THINKING_TAIL = 600
CODE_HEAD = 800

_COLOURS = {
    BranchStatus.PENDING: "#888", BranchStatus.RUNNING: "#1f77b4", BranchStatus.EXECUTING: "#9467bd",
    BranchStatus.ANSWERED: "#2ca02c", BranchStatus.NO_ANSWER: "#d08000", BranchStatus.STOPPED: "#888",
    BranchStatus.FAILED: "#d62728",
}
_MUTED = "var(--jp-ui-font-color2,#777)"
_BORDER = "var(--jp-border-color2,#ccc)"
_CARD = f"border:1px solid {_BORDER};border-radius:4px;padding:4px 8px;line-height:1.45"
_OUTPUT = f"border-left:3px solid {_BORDER};padding-left:6px;margin:2px 0 4px"
_THINKING = f"color:{_MUTED};border-left:2px dotted {_BORDER};padding-left:6px"
_GRID = {"stacked": "1fr", "side by side": "repeat(auto-fill, minmax(340px, 1fr))"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class LiveView:
    """Header, vote panel, controls and the branch cards; call it with solver events.

    The cards are one HTML widget (a CSS grid), redrawn at most every REDRAW_EVERY seconds: a
    widget per branch would multiply the models saved into the notebook.
    """

    def __init__(self, on_stop: Callable[[], None] | None = None, side_by_side: bool = False) -> None:
        """`on_stop` makes the view interactive (background mode): a Stop button, and layout and
        thinking controls. A blocking cell cannot receive clicks, so it gets none of them."""
        self.session: Session | None = None
        self.started = time.monotonic()
        self._drawn = 0.0
        self._flush_pending = False
        self._finished = False
        self.redraws = 0
        self.header = w.HTML("<b>jupyter_qwq</b> · starting…")
        self.vote = w.HTMLMath("")
        self.layout_toggle = w.ToggleButtons(options=list(_GRID),
                                             value="side by side" if side_by_side else "stacked",
                                             style={"button_width": "110px"})
        self.show_thinking = w.Checkbox(value=False, description="thinking", indent=False,
                                        layout=w.Layout(width="auto", margin="0 12px"))
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning")
        self._on_stop = on_stop
        self.stop_button.on_click(self._guarded(lambda _button: self._stop()))
        for control in (self.layout_toggle, self.show_thinking):
            control.observe(self._guarded(lambda _change: self._redraw()), names="value")
        self.message = w.HTML("")
        self.cards = w.HTMLMath("")
        interactive = [self.layout_toggle, self.show_thinking, self.stop_button] if on_stop else []
        self.controls = w.HBox(interactive, layout=w.Layout(align_items="center"))
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
            cards = "".join(live_card_html(b, session, self.show_thinking.value) for b in session.branches)
            self.cards.value = (f"<div style='display:grid;grid-template-columns:{columns};gap:6px;"
                                f"align-items:start'>{cards}</div>")

    def close(self) -> None:
        """Stop redrawing and close every widget of the view. The solve has ended: the record
        takes the view's place in the output, and a saved notebook keeps no widget that a
        reload (with no kernel, or a new one) could not find."""
        self._finished = True
        for widget in (self.header, self.vote, self.layout_toggle, self.show_thinking,
                       self.stop_button, self.message, self.cards, self.controls, self.widget):
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
    return f"<b>jupyter_qwq</b> · {_e(status_line(session, elapsed))}"


def vote_html(session: Session) -> str:
    vote = session.vote
    if not vote.tally:
        waiting = "no answer yet" if session.status.value == "running" else "no branch gave an answer"
        return f"<span style='color:{_MUTED}'>{waiting}</span>"
    running = session.status.value == "running"
    label = "Leading answer" if running else "Answer"
    notes = " · ".join(vote_notes(session))
    return (
        f"<div style='line-height:1.6'>{label}: ${_e(vote.answer)}$ · {'voting' if running else 'final'} · "
        f"{_e(notes)}</div>{tally_table(session, limit=8)}"
    )


def _card_title(branch: Branch, session: Session) -> str:
    answer = f" · <code>{_e(branch.answer)}</code>" if branch.answer is not None else ""
    if is_fallback(branch):
        answer += f" <span style='color:{_MUTED}' title='{_e(FALLBACK_HELP)}'>fallback</span>"
    colour = _COLOURS[branch.status]
    confidence = confidence_text(branch)
    shown = (f" · <span style='color:{_MUTED}' title='{_e(CONFIDENCE_HELP)}'>{_e(confidence)}</span>"
             if confidence else "")
    marks = "".join(f" · {_e(text)}" for text in (stop_text(branch, session), score_text(branch, session),
                                                   dropped_text(branch, session)) if text)
    return (
        f"<b>Branch {branch.index}</b> · <span title='{_e(prompt_help(branch.prompt))}'>{_e(branch.prompt)}</span> · "
        f"<span style='color:{colour}'>{_e(branch.status.value)}</span>{answer}{marks} · "
        f"{branch.completion_tokens} tokens{shown}"
    )


def step_chips_html(branch: Branch, session: Session) -> str:
    """The branch's step rewards as a row of small coloured chips, each with its figure."""
    chips = "".join(
        f"<span class='qwq-reward-chip' title='{_e(step_reward_title(number, s.score, session))}' "
        f"style='display:inline-block;margin:1px;padding:0 3px;border:1px solid;border-left-width:8px;"
        f"border-radius:3px;font-size:10px;border-color:{reward_colour(s.score)}'>{fixed(s.score, 2)}</span>"
        for number, s in enumerate(branch.step_scores, 1))
    return f"<div>{chips}</div>" if chips else ""


def live_card_html(branch: Branch, session: Session, thinking: bool = False) -> str:
    """The branch's latest steps in order (text, code and its output, text), each cut short."""
    parts = [f"<div>{_card_title(branch, session)}</div>", step_chips_html(branch, session)]
    recent = branch.steps[-3:]
    codes_before = sum(s.kind == "code" for s in branch.steps[: len(branch.steps) - len(recent)])
    for number, step in enumerate(recent):
        if step.kind == "code":
            codes_before += 1
            parts.append(_code_html(step, codes_before))
            continue
        if thinking and step.reasoning:
            parts.append(f"<div style='{_THINKING}'>{prose_html(_tail(step.reasoning, THINKING_TAIL))}</div>")
        text = without_run_code(step.text, recent[number + 1] if number + 1 < len(recent) else None)
        if text.strip():
            parts.append(prose_html(_tail(text, TEXT_TAIL if step is recent[-1] else TEXT_TAIL // 3)))
    if branch.error:
        parts.append(f"<div style='color:#d62728'>{_e(branch.error)}</div>")
    return f"<div style='{_CARD}'>{''.join(parts)}</div>"


def _code_html(step: Step, number: int) -> str:
    code = step.code if len(step.code) <= CODE_HEAD else step.code[:CODE_HEAD] + "\n…"
    state = step.execution or "running…"
    outputs = "".join(output_html(o) for o in step.outputs[:4])
    output_block = f"<div style='{_OUTPUT}'>{outputs}</div>" if outputs else ""
    return (
        f"<div style='color:{_MUTED}'>code block {number} · {_e(state)}</div>"
        f"{code_html(code)}{output_block}"
    )


def _tail(text: str, size: int) -> str:
    """The end of `text`, from a line start when one is near, so math and fences stay whole; a
    code fence open at the cut is opened again."""
    if len(text) <= size:
        return text
    cut = len(text) - size
    line = text.find("\n", cut, cut + size // 3)
    start = line + 1 if line >= 0 else cut
    reopen = "```\n" if text[:start].count("```") % 2 else ""
    return "…\n" + reopen + text[start:]
