"""The critic (--score critic) on the embedded default: the real llama.cpp server and model."""

from __future__ import annotations

import pytest

from jupyter_qwq import async_solve

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(900)]


async def test_the_critic_judges_each_answered_branch_and_its_verdict_weighs_the_vote():
    session = await async_solve(
        "Tom has 3 boxes of 4 apples and eats 2 apples. How many apples are left?",
        branches=1, rounds=0, prompts="cot", max_tokens=128, critic_max_tokens=64, seed=3,
        temperature=0.3, stop="none", score="critic", vote="weighted")
    answered = [b for b in session.branches if b.answer is not None]
    assert answered, "no branch answered: nothing for the critic to judge"
    for branch in answered:
        verdict = [note for note in branch.notes if note.startswith("critic: ")]
        assert len(verdict) == 1  # the critic was asked once, and what it said is in the record
        if branch.score is None:
            assert verdict[0].startswith("critic: no readable verdict (not scored)")
            continue
        assert 0.0 <= branch.score <= 1.0 and branch.step_scores
        steps = {s.step for s in branch.step_scores}
        assert all(branch.steps[i].kind == "text" for i in steps)
        if branch.score < 1.0:  # it named a first wrong step: scored 0, the ones before it 1
            assert [s.score for s in branch.step_scores][-1] == 0.0
    for group in session.vote.tally:  # each group weighs the sum of its branches' verdicts
        scores = [session.branches[b].score or 0.0 for b in group.branches]
        assert group.weight == pytest.approx(sum(scores), abs=1e-3)
