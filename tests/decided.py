"""Saved solves whose decisions carry information: a weighted vote with --keep-top drops, PRM
step rewards, a branch cut by low confidence, a solve ended by consensus. Shared by the view
tests and the explorer's browser test."""

from __future__ import annotations

from jupyter_qwq.decisions.steps import solution_steps
from jupyter_qwq.session import (
    Branch,
    BranchStatus,
    EngineInfo,
    Session,
    SolveStatus,
    Step,
    StepScore,
    TallyItem,
    Vote,
)

PROBLEM = "What is $6 \\times 7$?"
GOOD = ("Six sevens: add 7 six times.\n\nThat is $7+7+7+7+7+7 = 42$.\n\n"
        "```python\nprint(6 * 7)\n```")
CODE = "print(6 * 7)"
FINAL = "The code agrees: \\boxed{42}."
WRONG = "Six sevens are about 40.\n\nAdd one: \\boxed{41}."
CUT_NOTE = ("cut at 230 tokens: its last 64 tokens' confidence fell below the threshold 12.500 set "
            "by the warm-up branches")
REWARDS = {0: [0.97, 0.88, 0.93, 0.95, 0.91], 1: [0.9, 0.35, 0.8, 0.85, 0.62], 2: [0.55, 0.125]}


def _branch(index: int, text: str, answer: str | None, status: BranchStatus, reason: str,
            tokens: int, score: float | None = None, code: bool = False) -> Branch:
    steps = [Step(kind="text", text=text)]
    if code:
        steps += [Step(kind="code", code=CODE, execution="ok", feedback="42\n",
                       outputs=[{"output_type": "stream", "name": "stdout", "text": "42\n"}]),
                  Step(kind="text", text=FINAL)]
    return Branch(index=index, prompt="tir" if code else "cot", status=status, answer=answer,
                  answer_source="boxed" if answer else "", steps=steps, completion_tokens=tokens,
                  started=0.0, ended=3.0, stop_reason=reason, score=score)


def decided_session(score: str = "prm") -> Session:
    """score="prm": a weighted vote of PRM scores, --keep-top 75 dropping branch 2, step rewards.
    score="confidence": DeepConf online; branch 3 cut at token 230, the rest stopped by consensus."""
    branches = [
        _branch(0, GOOD, "42", BranchStatus.ANSWERED, "answered", 310, code=True),
        _branch(1, GOOD, "42", BranchStatus.ANSWERED, "answered", 295, code=True),
        _branch(2, WRONG, "41", BranchStatus.ANSWERED, "answered", 120),
        _branch(3, "Six sevens are", None, BranchStatus.STOPPED, "cut-low-confidence", 230),
        _branch(4, "Let me", None, BranchStatus.STOPPED, "stopped-decided", 40),
    ]
    branches[3].notes.append(CUT_NOTE)
    config = {"temperature": 0.7, "score": score, "vote": "weighted", "stop": "confidence",
              "early_stop": True, "consensus": 0.95, "keep_top": 75.0, "prm_aggregate": "min",
              "confidence_measure": "lowest_group"}
    if score == "prm":
        for branch in branches[:3]:
            parts = solution_steps(branch.steps)
            branch.step_scores = [StepScore(p.step, p.start, p.end, r)
                                  for p, r in zip(parts, REWARDS[branch.index], strict=True)]
            branch.score = min(REWARDS[branch.index])
        vote = Vote(answer="42", tally=[TallyItem("42", 2, [0, 1], weight=1.23)], agreement=1.0,
                    method="weighted", share=1.0, dropped=[2], decided_early=True)
    else:
        for branch, value in zip(branches[:3], (17.83, 16.2, 9.41)):
            branch.score = value
        vote = Vote(answer="42", tally=[TallyItem("42", 2, [0, 1], weight=34.03),
                                        TallyItem("41", 1, [2], weight=9.41)],
                    agreement=2 / 3, method="weighted", share=0.7834, threshold=12.5,
                    decided_early=True)
        config["keep_top"] = 100.0
    return Session(problem=PROBLEM, config=config, engine=EngineInfo(kind="endpoint", model="decided-model"),
                   branches=branches, vote=vote, status=SolveStatus.DONE, elapsed=3.0,
                   created="2026-12-01T00:00:00Z", ended_by="decided")


def facts_of(session: Session) -> dict:
    """Every decision fact the views word, as labextension/test/facts_cases.json lists them (and
    labextension/test/facts.test.ts computes them in the explorer)."""
    from jupyter_qwq.views import facts

    def steps(branch: Branch) -> list:
        shown = []
        for i, step in enumerate(branch.steps):
            if step.kind == "code":
                shown.append([facts.reward_spans(branch, i, len(step.feedback)), facts.code_reward_spans(branch, i)])
            else:
                following = branch.steps[i + 1] if i + 1 < len(branch.steps) else None
                shown.append([facts.reward_spans(branch, i, len(facts.without_run_code(step.text, following))), []])
        return shown

    return {
        "voteNotes": facts.vote_notes(session),
        "weights": [facts.weight_text(item, session) for item in session.vote.tally],
        "branches": [{
            "score": facts.score_text(b, session),
            "stop": facts.stop_text(b, session),
            "dropped": facts.dropped_text(b, session),
            "steps": [[[list(span) for span in part] for part in step] for step in steps(b)],
            "rewards": [[facts.step_reward_title(n, s.score, session), facts.reward_colour(s.score)]
                        for n, s in enumerate(b.step_scores, 1)],
        } for b in session.branches],
    }
