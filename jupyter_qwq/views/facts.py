"""The facts every view of a Session shows, worded once: the status line, the vote's notes, a
branch's answer and its marks, the sampling, the confidence. The views (html.py, widgets.py,
terminal.py, export.py) lay them out; none derives them again."""

from __future__ import annotations

from ..confidence import branch_trace, sparkline
from ..session import Branch, BranchStatus, Session, Step

SAMPLING = ("temperature", "top_p", "min_p", "top_k", "seed")
CONFIDENCE_HELP = (
    "Token confidence: minus the mean log-probability of the model's top candidates at each "
    "token, averaged over the branch (higher: surer). The bars trace it from start to end."
)


def without_run_code(text: str, following: Step | None) -> str:
    """The model's text without the fenced block at its end when that block is the code of the
    step that follows: that step shows it, with its outputs."""
    if following is None or following.kind != "code" or not following.code.strip():
        return text
    trimmed = text.rstrip()
    opening = trimmed.rfind("```", 0, len(trimmed) - 3)
    newline = trimmed.find("\n", opening)
    if not trimmed.endswith("```") or opening < 0 or newline < 0 or newline > len(trimmed) - 3:
        return text
    return trimmed[:opening].rstrip() if trimmed[newline + 1:-3].strip() == following.code.strip() else text


def count(n: int, word: str) -> str:
    """'1 branch', '3 branches'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith(('s', 'ch')) else 's'}"


def status_line(session: Session, elapsed: float) -> str:
    """Engine, time, tokens and how many branches are done, running and stopped."""
    statuses = [b.status for b in session.branches]
    running = sum(s in (BranchStatus.RUNNING, BranchStatus.EXECUTING) for s in statuses)
    rate = session.completion_tokens / elapsed if elapsed > 0 else 0.0
    return (
        f"{session.engine.kind} · {session.engine.model} · {elapsed:.1f} s · "
        f"{session.completion_tokens} tokens ({rate:.1f}/s) · "
        f"{sum(s.finished for s in statuses)}/{len(statuses)} done, {running} running, "
        f"{statuses.count(BranchStatus.STOPPED)} stopped · {session.status.value}"
    )


def summary(session: Session) -> str:
    """The answer in one line, then the error that ended the solve if one did: the record's
    text/plain form."""
    line = (f"{answer_or_none(session.answer)}  ({session.vote.agreement:.0%} agreement, "
            f"{count(len(session.branches), 'branch')}, {session.status.value})")
    return f"{line}\n{session.error}" if session.error else line


def branch_error(branch: Branch, session: Session) -> str:
    """The branch's error, or '' when it is the one that ended the solve: the session shows
    that one, once."""
    return "" if branch.error == session.error else branch.error


def answer_or_none(answer: str | None) -> str:
    return answer if answer is not None else "no answer"


def vote_notes(session: Session) -> list[str]:
    """What to say about the vote besides its tally: agreement, an early stop, a tie."""
    vote = session.vote
    notes = [f"agreement {vote.agreement:.0%}"]
    if vote.decided_early:
        notes.append("decided early: the remaining branches were stopped")
    if vote.tie:
        notes.append("tie, broken by the lowest branch index")
    return notes


def is_fallback(branch: Branch) -> bool:
    """The branch's answer was not boxed: kept and shown, marked, and it does not vote."""
    return branch.answer_source.startswith("fallback")


def branch_answer(branch: Branch) -> str:
    """The branch's answer as a label: '42', '12 (fallback)', '100000 (outside 0:99999)', or ''."""
    if branch.answer is None:
        return ""
    outside = f" ({branch.answer_outside})" if branch.answer_outside else ""
    return branch.answer + (" (fallback)" if is_fallback(branch) else "") + outside


def sampling_text(session: Session) -> str:
    """'temperature 0.7, top_p 0.8, ...': the solve's sampling, as recorded."""
    config = session.config
    return ", ".join(f"{name} {config[name]}" for name in SAMPLING if name in config)


def confidence_text(branch: Branch) -> str:
    """'confidence 12.3 ▂▄▆▅', or '' when the engine gave no log-probabilities."""
    if branch.confidence is None:
        return ""
    return f"confidence {branch.confidence:.1f} {sparkline(branch_trace(branch.steps), 16)}".rstrip()


FALLBACK_HELP = ("fallback: the branch gave no \\boxed{} answer; this one was extracted from its last "
                 "lines, is shown but does not vote")


def prompt_help(name: str) -> str:
    """What a prompt variant's name ("tir+hint2") says, a line per part (as the explorer's
    promptHelp in labextension/src/record.ts)."""
    meanings = {
        "tir": "tir: tool-integrated reasoning, the model may write Python that is run and its output read back",
        "cot": "cot: chain of thought, reasoning in text only, no code is run",
    }
    lines = []
    for part in name.split("+"):
        number = part[4:] if part.startswith("hint") and part[4:].isdigit() else None
        lines.append(meanings.get(part, part) if number is None else
                     f"hint{number}: the problem was given with hint number {number} added, so branches start differently")
    return "\n".join(lines)


NO_LOGPROBS = "no log-probabilities from this engine, so no confidence"
