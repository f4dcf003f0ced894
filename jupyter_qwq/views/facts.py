"""The facts every view of a Session shows, worded once: the status line, the vote's notes, a
branch's answer and its marks, the sampling, the confidence, and the decisions: each branch's
score and why it stopped, each answer's weight, each step's reward. The explorer
(labextension/src/facts.ts) words them the same; labextension/test/facts_cases.json holds the
cases both are tested on. The views (html.py, widgets.py,
terminal.py, export.py) lay them out; none derives them again."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from ..confidence import branch_trace, sparkline
from ..session import Branch, BranchStatus, Session, Step, TallyItem

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
    line = (f"{answer_or_none(session.answer)}  ({percent(session.vote.agreement)} agreement, "
            f"{count(len(session.branches), 'branch')}, {session.status.value})")
    return f"{line}\n{session.error}" if session.error else line


def branch_error(branch: Branch, session: Session) -> str:
    """The branch's error, or '' when it is the one that ended the solve: the session shows
    that one, once."""
    return "" if branch.error == session.error else branch.error


def answer_or_none(answer: str | None) -> str:
    return answer if answer is not None else "no answer"


def vote_notes(session: Session) -> list[str]:
    """What to say about the vote besides its tally: agreement, how it was weighed, what
    --keep-top dropped, the cut threshold, why the solve ended, a tie. The default policy
    (majority, every branch kept, run to its end or to a lossless stop) adds nothing."""
    vote = session.vote
    notes = [f"agreement {percent(vote.agreement)}"]
    weighing = _WEIGHING.get(vote.method, "")
    if weighing:
        notes.append(weighing.format(score=score_name(session)))
    if vote.dropped:
        notes.append(f"{_branches(vote.dropped)} answered but did not vote: outside {_keep_top(session)} (--keep-top)")
    if vote.threshold is not None:
        notes.append(f"cut threshold {fixed(vote.threshold, 2)}, set by the warm-up branches")
    ended = ended_by_text(session)
    if ended:
        notes.append(ended)
    if vote.tie:
        notes.append("tie, broken by the lowest branch index")
    return notes


_WEIGHING = {
    "weighted": "weighted vote: an answer weighs the sum of its branches' scores ({score})",
    "best": "best branch: the answer of the single best-scored branch wins ({score})",
}
_MEASURES = {
    "lowest_group": "lowest group confidence",
    "tail": "tail confidence",
    "bottom_10": "bottom 10% confidence",
    "mean": "mean confidence",
}


def score_name(session: Session) -> str:
    """What a branch's score measures under this solve's --score: 'lowest group confidence',
    'PRM min', 'critic'; 'score' when the record does not say."""
    kind = session.config.get("score")
    if kind == "confidence":
        return _MEASURES.get(str(session.config.get("confidence_measure")), "confidence")
    if kind == "prm":
        return f"PRM {session.config.get('prm_aggregate', 'min')}"
    if kind == "critic":
        return "critic"
    return "score"


def fixed(value: float, digits: int) -> str:
    """`value` with `digits` decimals, ties rounded up on its exact value: JavaScript's
    toFixed, so the explorer writes the same figures."""
    step = Decimal(1).scaleb(-digits)
    return str(Decimal(value).quantize(step, rounding=ROUND_HALF_UP))


def percent(share: float) -> str:
    """'67%', rounded as the explorer rounds it."""
    return f"{fixed(100 * share, 0)}%"


def _plain(value: object) -> str:
    """A setting's number as JavaScript's String() writes the short values settings hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "?" if value is None else str(value)
    return f"{value:g}"


def _branches(indices: list[int]) -> str:
    """'branch 3', 'branches 3, 5'."""
    return f"branch {indices[0]}" if len(indices) == 1 else f"branches {', '.join(map(str, indices))}"


def ended_by_text(session: Session) -> str:
    """Why the solve ended, when it says more than 'every branch ran to its end'."""
    config = session.config
    ended = session.ended_by or ("decided" if session.vote.decided_early else "")
    if ended == "decided":
        rule = str(config.get("stop", "lossless")) if config.get("early_stop", True) else "none"
        if rule.startswith("agree:"):
            return f"ended early: {rule[6:]} branches agreed (--stop {rule}); the rest were stopped"
        if rule == "confidence":
            return (f"ended early: the leading answer held {percent(session.vote.share)} of the weight "
                    f"(--consensus {_plain(config.get('consensus', 0.95))}); the rest were stopped")
        return "decided early: the remaining branches were stopped"
    if ended == "token-budget":
        return f"ended by the token budget of {_plain(config.get('token_budget'))} tokens; the answers so far voted"
    if ended == "time-limit":
        return f"ended by the time limit of {_plain(config.get('time_limit'))} s; the answers so far voted"
    if ended == "cancelled":
        return "cancelled before every branch ended"
    if ended == "error":
        return "ended by an error"
    return ""


def weight_text(item: TallyItem, session: Session) -> str:
    """'weight 1.62' beside a group's count when the vote is weighted; '' for a majority vote."""
    if session.vote.method == "majority" or item.weight is None:
        return ""
    return f"weight {fixed(item.weight, 2)}"


def score_text(branch: Branch, session: Session) -> str:
    """The branch's score and what it measures: 'lowest group confidence 17.83', 'PRM min 0.41',
    'critic: first wrong step 3'; 'not scored' for an answered branch the solve could not
    score; '' when the solve scores nothing."""
    kind = session.config.get("score", "none")
    if branch.score is None:
        return "not scored" if kind != "none" and branch.stop_reason == "answered" else ""
    if kind == "critic":
        wrong = next((n for n, s in enumerate(branch.step_scores, 1) if s.score == 0), None)
        return "critic: no wrong step" if wrong is None else f"critic: first wrong step {wrong}"
    return f"{score_name(session)} {fixed(branch.score, 2)}"


def stop_text(branch: Branch, session: Session) -> str:
    """Why the branch stopped, in plain words, when its status does not already say it."""
    reason = branch.stop_reason
    if reason == "cut-low-confidence":
        threshold = session.vote.threshold
        below = f" (its window fell below {fixed(threshold, 2)})" if threshold is not None else ""
        return f"cut by low confidence at token {branch.completion_tokens}{below}"
    return _STOPS.get(reason, "")


_STOPS = {
    "stopped-decided": "stopped early: the vote was decided",
    "budget": "stopped: the token budget ran out",
    "time-limit": "stopped: the time limit ran out",
    "cancelled": "cancelled",
    "error": "ended by an error",
}


def dropped_text(branch: Branch, session: Session) -> str:
    """'did not vote: outside the top 50% by score (--keep-top)', for a branch --keep-top dropped."""
    if branch.index not in session.vote.dropped:
        return ""
    return f"did not vote: outside {_keep_top(session)} (--keep-top)"


def _keep_top(session: Session) -> str:
    keep = session.config.get("keep_top")
    return f"the top {fixed(keep, 0)}% by score" if isinstance(keep, (int, float)) else "the top by score"


def reward_colour(score: float) -> str:
    """A step reward's colour, red (0) through amber to green (1): hsl(120 * score, 65%, 40%) as
    #rrggbb (sanitizers keep hex colours, not hsl), in integer steps so the explorer's is the same."""
    hue = math.floor(120 * min(1.0, max(0.0, score)) + 0.5)

    def rising(h: int) -> int:  # a channel from 36 (h = 0) to 168 (h = 60)
        return (35700 + 2210 * h + 500) // 1000

    red, green = (168, rising(hue)) if hue <= 60 else (rising(120 - hue), 168)
    return f"#{red:02x}{green:02x}24"


def step_reward_title(number: int, score: float, session: Session) -> str:
    """What a step's badge says on hover: 'step 3: PRM reward 0.41 (probability it is right)'."""
    if session.config.get("score") == "critic":
        verdict = "the first wrong step" if score == 0 else "correct"
        return f"step {number}: critic: {verdict}"
    return f"step {number}: PRM reward {fixed(score, 2)} (probability it is right)"


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


def reward_spans(branch: Branch, step: int, shown: int) -> list[tuple[int, int, int, float]]:
    """The scored parts of record step `step` as (start, end, number, score), cut to the first
    `shown` characters the view shows; `number` counts the branch's scored steps from 1."""
    spans = [(s.start, min(s.end, shown), number, s.score)
             for number, s in enumerate(branch.step_scores, 1) if s.step == step]
    return sorted(span for span in spans if span[0] < span[1])


def code_reward_spans(branch: Branch, step: int) -> list[tuple[int, int, int, float]]:
    """The scored parts of the text before code step `step` that the views show as that code
    (the fenced block the text ends with, see without_run_code)."""
    if step < 1 or branch.steps[step].kind != "code" or branch.steps[step - 1].kind != "text":
        return []
    shown = len(without_run_code(branch.steps[step - 1].text, branch.steps[step]))
    return [span for span in reward_spans(branch, step - 1, 1 << 62) if span[0] >= shown]
