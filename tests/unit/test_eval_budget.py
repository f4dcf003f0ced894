"""How `jupyter-qwq eval --time-budget` shares time out, and the accuracy-against-tokens curve."""

from __future__ import annotations

import time

import pytest

from jupyter_qwq.evaluate import Score, TimeBudget
from jupyter_qwq.exceptions import ConfigError
from jupyter_qwq.views.plot import accuracy_curve


def budget_with(seconds_left: float, **options) -> TimeBudget:
    budget = TimeBudget(5 * 3600, **options)
    budget.started = time.monotonic() - (budget.seconds - seconds_left)
    return budget


def test_a_problem_gets_aimo3s_share_of_the_time_left():
    aimo = {"low": 300, "high": 900, "reserve": 300}
    assert budget_with(18000, **aimo).share(50, 49, 1) == 900  # ahead of schedule: the cap
    assert budget_with(15000, **aimo).share(50, 48, 1) == pytest.approx(600, abs=1)
    assert budget_with(1000, **aimo).share(50, 10, 1) == 300  # behind: the floor
    assert budget_with(200, **aimo).share(50, 10, 1) == pytest.approx(200, abs=1)  # never past the end
    assert budget_with(0.5, **aimo).share(50, 10, 1) is None  # spent: start nothing more


def test_concurrent_lanes_each_keep_a_reserve_for_their_own_problems():
    # 3 problems wait behind this one on 2 lanes: 2 reserves, not 3
    assert budget_with(2000, low=300, high=1800, reserve=300).share(10, 3, 2) == pytest.approx(1400, abs=1)
    assert budget_with(2000, low=300, high=1800, reserve=300).share(10, 3, 1) == pytest.approx(1100, abs=1)


def test_without_bounds_a_problem_gets_an_even_share_up_to_three():
    budget = TimeBudget(1000)  # 10 problems, one at a time: 100 s each
    assert budget.share(10, 9, 1) == pytest.approx(100, abs=1)
    assert budget_with(5 * 3600 - 0.0).share(100, 0, 1) == pytest.approx(3 * 5 * 3600 / 100)


def test_a_budget_that_cannot_work_says_so():
    with pytest.raises(ConfigError, match="more than 0 seconds"):
        TimeBudget(0)
    with pytest.raises(ConfigError, match="LOW:HIGH"):
        TimeBudget(60, low=10, high=5)


def score(tokens: int, correct: bool, any_correct: bool | None = None) -> Score:
    return Score(key=str(tokens), gold="1", answer="1" if correct else "2", correct=correct,
                 any_correct=correct if any_correct is None else any_correct, tokens=tokens, elapsed=1.0,
                 status="done")


def test_the_curve_counts_a_problem_right_only_within_the_tokens_it_used():
    budgets, accuracy, passing = accuracy_curve([score(300, True), score(100, False, True), score(900, True)])
    assert budgets == [100, 300, 900]
    assert accuracy == [0, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert passing == [pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
