"""benchmarks/replay.py: policies replayed on recorded runs decide and spend as the solver would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.console import Console

from jupyter_qwq.confidence import Trace
from jupyter_qwq.decisions.policy import Policy
from jupyter_qwq.session import Branch, BranchStatus, Session, Step

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from replay import load_runs, replay  # noqa: E402


def branch(index: int, answer: str, tokens: int, confidence: float, rate: float = 10.0) -> Branch:
    trace = Trace()
    trace.extend([confidence] * tokens)
    step = Step("text", text=f"\\boxed{{{answer}}}", confidence=trace.encoded(), tokens=tokens,
                started=0.0, duration=tokens / rate)
    return Branch(index=index, prompt="tir", status=BranchStatus.ANSWERED, answer=answer,
                  answer_source="boxed", steps=[step], completion_tokens=tokens, ended=tokens / rate)


def session(*branches: Branch) -> Session:
    return Session(problem="?", config={"vote_fallbacks": False}, branches=list(branches))


def test_every_branch_to_its_end_costs_every_token():
    run = session(branch(0, "7", 100, 5), branch(1, "7", 100, 5), branch(2, "8", 300, 5))
    outcome = replay(run, Policy(stop="none"))
    assert (outcome.answer, outcome.tokens) == ("7", 500)


def test_agree_stops_at_the_second_agreeing_branch_and_counts_what_the_others_wrote_by_then():
    run = session(branch(0, "7", 100, 5), branch(1, "7", 100, 5), branch(2, "8", 300, 5), branch(3, "8", 300, 5))
    outcome = replay(run, Policy(stop="agree:2"))
    assert outcome.answer == "7" and outcome.stopped_at == pytest.approx(10.0)
    assert outcome.tokens == 400  # 100 each: the slow ones had written 100 in those 10 s


def test_deepconf_online_cuts_the_unsure_branch_after_its_first_full_window():
    run = session(branch(0, "7", 100, 5.0), branch(1, "8", 100, 6.0), branch(2, "9", 300, 1.0),
                  branch(3, "7", 50, 5.5))
    policy = Policy(score="confidence", vote="weighted", stop="confidence", warmup=2, window=4,
                    percentile=10)
    outcome = replay(run, policy)
    assert outcome.cut == 1 and outcome.tokens == 100 + 100 + 4 + 50
    assert outcome.answer == "7"  # 5.0 + 5.5 against 6.0; the cut 9 does not vote


def test_scores_a_run_recorded_from_a_prm_weigh_the_replayed_vote():
    run = session(branch(0, "7", 100, 5), branch(1, "7", 100, 5), branch(2, "8", 100, 5))
    run.config["score"] = "prm"
    for b, score in zip(run.branches, (0.2, 0.3, 0.9), strict=True):
        b.score = score
    assert replay(run, Policy(score="prm", vote="weighted", stop="none")).answer == "8"
    assert replay(run, Policy(stop="none")).answer == "7"


def test_on_the_recorded_runs_majority_and_the_lossless_stop_give_the_recorded_answers():
    runs = [r for group in load_runs(sorted((BENCHMARKS / "data").glob("*.jsonl.gz")),
                                     Console(quiet=True)).values() for r in group]
    assert len(runs) >= 50
    for run in runs:
        assert replay(run.session, Policy(stop="none")).answer == run.session.answer
        lossless = replay(run.session, Policy(stop="lossless"))
        assert lossless.answer == run.session.answer
        assert lossless.tokens <= sum(b.completion_tokens for b in run.session.branches)
        assert replay(run.session, Policy(stop="none")).tokens == run.session.completion_tokens
