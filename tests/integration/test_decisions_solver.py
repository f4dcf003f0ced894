"""Scores, votes, stop rules and the token budget in a real solve: a scripted server (with
log-probabilities) and real subkernels."""

from __future__ import annotations

import time

import pytest
from prm_server import PrmServer
from processes import settled
from scripted_server import Reply, branch_and_round

from jupyter_qwq import async_solve
from jupyter_qwq.session import BranchStatus

pytestmark = pytest.mark.timeout(120)


async def test_agree_2_stops_the_others_once_two_branches_agree(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        if branch < 2:
            return Reply("\\boxed{7}", delay=0.15)  # the others have written some by then
        return Reply("thinking " * 400, delay=0.02)  # ~8 s each

    server = scripted(script)
    started = time.monotonic()
    session = await async_solve("?", **server.options(branches=5, rounds=0, stop="agree:2"))
    assert time.monotonic() - started < 5
    assert session.answer == "7" and session.vote.decided_early and session.ended_by == "decided"
    assert [b.stop_reason for b in session.branches] == ["answered"] * 2 + ["stopped-decided"] * 3
    assert all(0 < b.completion_tokens < 400 for b in session.branches[2:])  # what each cost
    await settled(lambda: server.open_streams() == 0)
    assert server.outcomes().count("aborted") == 3


async def test_a_low_confidence_branch_is_cut_mid_stream_and_does_not_vote(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        if branch == 0:
            return Reply("So \\boxed{7}.", confidence=5.0)
        if branch == 1:
            return Reply("So \\boxed{8}.", confidence=6.0)
        if branch == 2:  # unsure: cut by the threshold the warm-up set
            return Reply("hmm " * 300 + "\\boxed{9}", confidence=1.0, delay=0.02)
        return Reply("wait " * 20 + "so \\boxed{7}.", confidence=5.5, delay=0.05)

    server = scripted(script)
    session = await async_solve("?", **server.options(
        branches=4, rounds=0, stop="confidence", warmup=2, confidence_window=4, score="confidence",
        vote="weighted", warmup_percentile=10))
    cut = session.branches[2]
    assert cut.started >= max(b.ended for b in session.branches[:2])  # after the warm-up
    assert cut.status is BranchStatus.STOPPED and cut.stop_reason == "cut-low-confidence"
    assert cut.answer is None and 2 not in [b for t in session.vote.tally for b in t.branches]
    assert 4 <= cut.completion_tokens < 300 and "threshold 5.100" in cut.notes[-1]
    assert session.vote.threshold == pytest.approx(5.1)
    assert [b.stop_reason for b in session.branches] == ["answered", "answered", "cut-low-confidence", "answered"]
    assert session.answer == "7"  # 5.0 + 5.5 against 6.0
    assert session.branches[3].confidence_scores["lowest_group"] == pytest.approx(5.5)
    await settled(lambda: server.open_streams() == 0)
    assert [s.outcome for s in server.streams if branch_and_round(s.body)[0] == 2] == ["aborted"]


async def test_when_the_warm_up_agrees_the_later_branches_never_start(scripted):
    server = scripted(lambda body: Reply("So \\boxed{7}.", confidence=5.0))
    session = await async_solve("?", **server.options(branches=6, rounds=0, stop="confidence",
                                                     warmup=2, score="confidence", vote="weighted"))
    assert session.answer == "7" and session.ended_by == "decided"
    assert [b.stop_reason for b in session.branches] == ["answered"] * 2 + ["stopped-decided"] * 4
    assert len(server.streams) == 2 and session.completion_tokens == sum(
        b.completion_tokens for b in session.branches[:2])


async def test_the_weighted_vote_picks_a_sure_minority_the_majority_would_lose(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("\\boxed{12}", confidence=9.0) if branch == 0 else Reply("\\boxed{7}", confidence=2.0)

    server = scripted(script)
    options = server.options(branches=3, rounds=0, stop="none", score="confidence")
    majority = await async_solve("?", **options)
    weighted = await async_solve("?", **options, vote="weighted")
    assert majority.answer == "7" and weighted.answer == "12"
    assert [(t.answer, t.weight) for t in weighted.vote.tally] == [("12", 9.0), ("7", 4.0)]
    assert [b.score for b in weighted.branches] == [9.0, 2.0, 2.0]


async def test_the_critic_is_asked_for_the_first_wrong_step_and_its_verdict_weighs_the_vote(scripted):
    def script(body):
        asked = body["messages"][-1]["content"]
        if "[Solution]" in asked:  # the critic's request: greedy, and its own token budget
            assert body["temperature"] == 0.0 and body["max_tokens"] == 50
            return Reply("Paragraph 1 multiplies wrongly. \\boxed{1}" if "48" in asked else "\\boxed{-1}")
        branch, _ = branch_and_round(body)
        if branch == 0:
            return Reply("Six times seven.\n\nThat is 42.\n\nSo \\boxed{42}.")
        return Reply("Six times seven.\n\nThat is 48.\n\nSo \\boxed{48}.")

    server = scripted(script)
    session = await async_solve("6*7?", **server.options(
        branches=3, rounds=0, stop="none", score="critic", vote="weighted", critic_max_tokens=50))
    right, wrong = session.branches[0], session.branches[1]
    assert right.score == 1.0 and wrong.score == pytest.approx(1 / 3, abs=1e-3)
    assert [s.score for s in wrong.step_scores] == [1.0, 0.0]
    assert wrong.notes[-1].startswith("critic: first wrong step 1 of 3")
    assert session.answer == "42"  # 1.0 against 2 × 0.333


async def test_the_token_budget_stops_the_solve_and_the_answers_so_far_vote(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("\\boxed{3}") if branch == 0 else Reply("slow " * 500, delay=0.01)

    server = scripted(script)
    session = await async_solve("?", **server.options(branches=3, rounds=0, token_budget=60))
    assert session.ended_by == "token-budget" and session.answer == "3"
    assert [b.stop_reason for b in session.branches] == ["answered", "budget", "budget"]
    assert 60 <= session.completion_tokens < 80


async def test_a_prm_weighs_the_branches_and_its_step_rewards_are_in_the_record(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        if branch == 0:
            return Reply("Six times seven.\n\nThat is 42.\n\nSo \\boxed{42}.")
        return Reply("Six times seven.\n\nThat is 48, a wrong product.\n\nSo \\boxed{48}.")

    with PrmServer(lambda step: 0.05 if "wrong" in step else 0.95) as prm:
        server = scripted(script)
        session = await async_solve("6*7?", **server.options(
            branches=3, rounds=0, stop="none", score="prm", prm_endpoint=prm.url, vote="weighted"))
    assert session.answer == "42"
    right, wrong = session.branches[0], session.branches[1]
    assert right.score == pytest.approx(0.95) and wrong.score == pytest.approx(0.05)
    assert [s.score for s in wrong.step_scores] == [0.95, 0.05, 0.95]
    second = wrong.step_scores[1]
    assert wrong.steps[second.step].text[second.start:second.end] == "That is 48, a wrong product."

