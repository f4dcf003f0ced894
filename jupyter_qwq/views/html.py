"""A Session as static HTML: readable on GitHub, nbviewer and in any browser, with no script.

Everything from the record is escaped: the model's text and its code's output are untrusted.
The model's text is rendered markdown whose math is left for the viewer's MathJax (prose.py);
code is highlighted with Pygments. Rich outputs are limited to PNG/JPEG images (as data URIs) and text; HTML a branch's code produced
is shown as its text/plain form, never injected.
"""

from __future__ import annotations

import html
import re
from typing import Any

from ..session import Branch, Session, Step
from .facts import (
    CONFIDENCE_HELP,
    FALLBACK_HELP,
    NO_LOGPROBS,
    answer_or_none,
    branch_answer,
    branch_error,
    code_reward_spans,
    confidence_text,
    count,
    dropped_text,
    fixed,
    is_fallback,
    prompt_help,
    reward_colour,
    reward_spans,
    sampling_text,
    score_text,
    step_reward_title,
    stop_text,
    vote_notes,
    weight_text,
    without_run_code,
)
from .prose import code_html, prose_html

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_IMAGES = ("image/png", "image/jpeg")

STYLE = """
.qwq{font-family:system-ui,sans-serif;font-size:13px;line-height:1.45;max-width:1100px}
.qwq h3{margin:.2em 0;font-size:15px}
.qwq .problem{padding:.4em .6em;border-left:3px solid #888;margin:.4em 0}
.qwq .meta{color:#666}
.qwq .answer{font-size:16px;font-weight:600;margin:.4em 0}
.qwq table{border-collapse:collapse;margin:.4em 0}
.qwq td,.qwq th{padding:2px 8px;text-align:left;border-bottom:1px solid rgba(128,128,128,.25)}
.qwq details{margin:.3em 0;border:1px solid rgba(128,128,128,.3);border-radius:4px;padding:.2em .5em}
.qwq summary{cursor:pointer}
.qwq pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;padding:.4em;background:rgba(128,128,128,.08)}
.qwq .text p{margin:.3em 0}
.qwq .thinking{color:#777}
.qwq .err{color:#b00}
.qwq .status-answered{color:#080}.qwq .status-failed{color:#b00}.qwq .status-no_answer{color:#a60}
.qwq .why{color:#a60}
.qwq .reward{border-left:4px solid;padding-left:6px;margin:2px 0}
.qwq .reward-badge{display:inline-block;min-width:2.6em;padding:0 4px;border:1px solid;border-left-width:8px;border-radius:3px;font-size:11px;font-weight:600}
"""


def session_html(session: Session) -> str:
    parts = [
        f"<div class='qwq'><style>{STYLE}</style>",
        _header(session),
        _tally(session),
        *(_branch(branch, session) for branch in session.branches),
        "</div>",
    ]
    return "\n".join(parts)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _header(session: Session) -> str:
    answer = session.answer
    shown = f"<code>{_e(answer)}</code>" if answer is not None else answer_or_none(answer)
    engine = session.engine
    sampling = sampling_text(session)
    error = f"<div class='err'>{_e(session.error)}</div>" if session.error else ""
    if engine.logprobs is False:
        sampling += f"; {NO_LOGPROBS}"
    return (
        f"<h3>jupyter_qwq · {_e(session.status.value)}</h3>"
        f"<div class='problem'>{prose_html(session.problem)}</div>"
        f"<div class='answer'>Answer: {shown}</div>{error}"
        f"<div class='meta'>{_e(engine.kind)} · {_e(engine.model)} · {session.elapsed:.1f} s · "
        f"{session.completion_tokens} tokens · {count(len(session.branches), 'branch')} · {_e(sampling)}</div>"
    )


def _tally(session: Session) -> str:
    vote = session.vote
    if not vote.tally:
        return "<div class='meta'>No branch gave an answer.</div>"
    return f"{tally_table(session)}<div class='meta'>{_e('; '.join(vote_notes(session)))}</div>"


def tally_table(session: Session, limit: int | None = None) -> str:
    """The vote as a table with bars (by weight when the vote is weighted), each answer's weight
    beside its count; inline styles only, so the live widget can show it too."""
    tally = session.vote.tally[:limit]
    weighed = any(weight_text(item, session) for item in tally)
    size = (lambda item: item.weight or 0.0) if weighed else (lambda item: item.count)
    total = sum(size(item) for item in session.vote.tally) or 1
    rows = "".join(
        f"<tr><td><code>{_e(item.answer)}</code></td><td>{item.count}</td>"
        + (f"<td>{_e(weight_text(item, session))}</td>" if weighed else "")
        + f"<td><span style='display:inline-block;height:10px;width:{int(160 * size(item) / total)}px;"
        f"background:var(--jp-brand-color1,#4a90d9)'></span></td>"
        f"<td style='opacity:.7'>branches {_e(', '.join(map(str, item.branches)))}</td></tr>"
        for item in tally
    )
    weight = "<th>weight</th>" if weighed else ""
    return f"<table><tr><th>answer</th><th>votes</th>{weight}<th></th><th></th></tr>{rows}</table>"


def _branch(branch: Branch, session: Session) -> str:
    label = branch_answer(branch)
    mark = f"<span title='{_e(FALLBACK_HELP)}'>{_e(label[len(branch.answer):])}</span>" if is_fallback(branch) else ""
    answer = f" · answer <code>{_e(branch.answer)}</code>{mark}" if label else ""
    confidence = confidence_text(branch)
    marks = [(text, css) for text, css in ((stop_text(branch, session), "why"), (score_text(branch, session), "score"),
                                           (dropped_text(branch, session), "why")) if text]
    summary = (
        f"Branch {branch.index} · <span title='{_e(prompt_help(branch.prompt))}'>{_e(branch.prompt)}</span> · "
        f"<span class='status-{_e(branch.status.value)}'>{_e(branch.status.value)}</span>{answer} · "
        + "".join(f"<span class='{css}'>{_e(text)}</span> · " for text, css in marks)
        + f"{branch.completion_tokens} tokens · {branch.elapsed:.1f} s"
        + (f" · <span class='meta' title='{_e(CONFIDENCE_HELP)}'>{_e(confidence)}</span>" if confidence else "")
    )
    error = branch_error(branch, session)
    shown_error = f"<div class='err'>{_e(error)}</div>" if error else ""
    shown_error += "".join(f"<div class='meta note'>{_e(note)}</div>" for note in branch.notes)
    following = [*branch.steps[1:], None]
    steps = "".join(step_html(step, after, RewardContext(branch, session, number))
                    for number, (step, after) in enumerate(zip(branch.steps, following)))
    return f"<details><summary>{summary}</summary>{shown_error}{steps}</details>"


class RewardContext:
    """Where a step sits, so its scored parts can be coloured by their reward."""

    def __init__(self, branch: Branch, session: Session, step: int) -> None:
        self.branch, self.session, self.step = branch, session, step

    def spans(self, shown: int) -> list[tuple[int, int, int, float]]:
        return reward_spans(self.branch, self.step, shown)

    def code_spans(self) -> list[tuple[int, int, int, float]]:
        return code_reward_spans(self.branch, self.step)

    def badge(self, number: int, score: float) -> str:
        title = step_reward_title(number, score, self.session)
        return (f"<span class='reward-badge' style='border-color:{reward_colour(score)}' "
                f"title='{_e(title)}' aria-label='{_e(title)}'>{fixed(score, 2)}</span>")

    def wrap(self, number: int, score: float, body: str) -> str:
        return (f"<div class='reward' style='border-left-color:{reward_colour(score)}' "
                f"data-step='{number}'>{self.badge(number, score)}{body}</div>")


def step_html(step: Step, following: Step | None = None, rewards: RewardContext | None = None) -> str:
    if step.kind == "code":
        outputs = "".join(output_html(output) for output in step.outputs)
        label = f"<div class='meta'>code · {_e(step.execution)} · {step.duration:.2f} s</div>"
        code = code_html(step.code)
        for _start, _end, number, score in (rewards.code_spans() if rewards else []):
            code = rewards.wrap(number, score, code)
        for _start, _end, number, score in (rewards.spans(len(step.feedback)) if rewards else []):
            outputs = rewards.wrap(number, score, outputs)  # the output, as the model read it, is the step
        return f"{label}{code}{outputs}"
    thinking = (
        f"<details><summary class='meta'>thinking</summary><div class='text thinking'>"
        f"{prose_html(step.reasoning)}</div></details>"
        if step.reasoning
        else ""
    )
    text = without_run_code(step.text, following)
    spans = rewards.spans(len(text)) if rewards else []
    if not spans:
        return f"{thinking}<div class='text'>{prose_html(text)}</div>"
    parts, done = [], 0
    for start, end, number, score in spans:
        if text[done:start].strip():
            parts.append(prose_html(text[done:start]))
        parts.append(rewards.wrap(number, score, prose_html(text[start:end])))
        done = max(done, end)
    if text[done:].strip():
        parts.append(prose_html(text[done:]))
    return f"{thinking}<div class='text'>{''.join(parts)}</div>"


def output_html(output: dict[str, Any]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        css = " class='err'" if output.get("name") == "stderr" else ""
        return f"<pre{css}>{_e(_text(output.get('text', '')))}</pre>"
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback") or []))
        body = trace or f"{output.get('ename', '')}: {output.get('evalue', '')}"
        return f"<pre class='err'>{_e(body)}</pre>"
    data = output.get("data") or {}
    for mime in _IMAGES:
        if mime in data:
            payload = re.sub(r"\s", "", _text(data[mime]))
            if re.fullmatch(r"[A-Za-z0-9+/=]*", payload):
                return f"<img alt='plot' src='data:{mime};base64,{payload}' style='max-width:100%'>"
    if "text/plain" in data:
        return f"<pre>{_e(_ANSI.sub('', _text(data['text/plain'])))}</pre>"
    return ""


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)
