"""benchmarks/branch_scaling.py: maj@m and pass@m subsampled exactly from recorded branches."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jupyter_qwq.confidence import Trace
from jupyter_qwq.session import Branch, BranchStatus, Session, Step

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from branch_scaling import Problem  # noqa: E402


def branch(index: int, answer: str | None, confidence: float = 5.0, temperature: float = 0.7) -> Branch:
    trace = Trace()
    trace.extend([confidence] * 10)
    step = Step("text", text=f"\\boxed{{{answer}}}" if answer else "no idea", confidence=trace.encoded(), tokens=10)
    return Branch(index=index, prompt="tir", status=BranchStatus.ANSWERED if answer else BranchStatus.NO_ANSWER,
                  answer=answer, answer_source="boxed" if answer else "", steps=[step], completion_tokens=10,
                  sampling={"temperature": temperature})


def problem(gold: str, *branches: Branch) -> Problem:
    record = Session(problem="?", config={"vote_fallbacks": False}, branches=list(branches)).to_dict()
    return Problem({"key": "p", "gold": gold, "record": record}, window=4)


def test_equivalent_spellings_vote_together_and_ties_count_as_the_right_share():
    found = problem("0.5", branch(0, "\\frac{1}{2}"), branch(1, "1/2"), branch(2, "3"), branch(3, None))
    assert found.expected(1)["majority"] == pytest.approx(2 / 4)
    # pairs: {0,1} right; {0,2},{1,2} a 1-1 tie (half right); {0,3},{1,3} right; {2,3} wrong
    assert found.expected(2)["majority"] == pytest.approx((1 + 0.5 + 0.5 + 1 + 1 + 0) / 6)
    assert found.expected(2)["pass"] == pytest.approx(5 / 6)
    assert found.expected(4) == {"majority": 1.0, "weighted": 1.0, "pass": 1.0, "default": 1.0}


def test_the_weighted_vote_lets_a_confident_lone_branch_beat_two_unsure_ones():
    found = problem("7", branch(0, "7", confidence=20.0), branch(1, "8", 1.0), branch(2, "8", 1.0))
    assert found.expected(3)["majority"] == 0.0
    assert found.expected(3)["weighted"] == 1.0


def test_the_default_solve_keeps_its_greedy_branch_and_a_tie_goes_to_it():
    found = problem("7", branch(0, "7", temperature=0.0), branch(1, "8"), branch(2, "9"), branch(3, "8"))
    # with the greedy branch and one sampled, every pair is a 1-1 tie, which branch 0 wins
    assert found.expected(2)["default"] == 1.0
    assert found.expected(2)["majority"] == pytest.approx((0.5 + 0.5 + 0.5) / 6)
    # greedy + two sampled: {1,2} tie won by 7, {1,3} 8 wins twice, {2,3} tie won by 7
    assert found.expected(3)["default"] == pytest.approx(2 / 3)
    assert found.expected(1)["default"] == 1.0 and found.expected(1)["majority"] == 0.25
