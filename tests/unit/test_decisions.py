"""Scores, votes and stop rules (jupyter_qwq/decisions): pure rules a user's settings pick."""

from __future__ import annotations

import pytest

from jupyter_qwq.answers import decided, vote
from jupyter_qwq.config import make_config
from jupyter_qwq.decisions.critic import read_verdict
from jupyter_qwq.decisions.policy import Policy, parse_stop
from jupyter_qwq.decisions.scores import confidence_scores, percentile
from jupyter_qwq.decisions.steps import solution_steps
from jupyter_qwq.decisions.stops import first_cut, should_stop, threshold
from jupyter_qwq.decisions.votes import tally
from jupyter_qwq.exceptions import ConfigError
from jupyter_qwq.flags import build_parser, overrides_from_args
from jupyter_qwq.session import Branch, Session, Step, StepScore


def test_deepconf_measures_of_a_trace():
    values = [5.0, 5.0, 1.0, 3.0, 5.0, 4.0]
    scores = confidence_scores(values, window=2)
    # windows: 5, 3, 2, 4, 4.5
    assert scores["lowest_group"] == 2.0
    assert scores["tail"] == 4.5
    assert scores["bottom_10"] == 2.0  # the lowest tenth of 5 windows is one window
    assert scores["mean"] == pytest.approx(23 / 6, abs=1e-4)
    assert confidence_scores([], window=2) == {}
    assert confidence_scores([2.0, 4.0], window=2048)["lowest_group"] == 3.0  # shorter: one window


def test_weighted_vote_lets_a_sure_minority_beat_an_unsure_majority():
    answers = {0: "12", 1: "7", 2: "7", 3: "7"}
    scores = {0: 9.0, 1: 2.0, 2: 2.0, 3: 2.5}
    assert vote(answers).answer == "7"
    weighted = tally(answers, scores, "weighted")
    assert weighted.answer == "12" and weighted.method == "weighted"
    assert [(t.answer, t.weight) for t in weighted.tally] == [("12", 9.0), ("7", 6.5)]
    assert weighted.share == pytest.approx(9 / 15.5, abs=1e-4)
    assert tally(answers, scores, "majority").answer == "7"


def test_best_takes_the_single_best_branch_and_keep_top_drops_the_rest():
    answers = {0: "1", 1: "2", 2: "2", 3: "2", 4: "3"}
    scores = {0: 0.5, 1: 0.4, 2: 0.45, 3: 0.3, 4: 0.9}
    assert tally(answers, scores, "best").answer == "3"
    kept = tally(answers, scores, "weighted", keep_top=60)  # 3 of 5: branches 4, 0, 2
    assert kept.dropped == [1, 3]
    assert sorted(b for t in kept.tally for b in t.branches) == [0, 2, 4]
    assert kept.answer == "3"


def test_a_vote_is_never_empty_while_a_branch_answered():
    answers = {0: None, 1: "5", 2: None}
    assert tally(answers, {}, "weighted", keep_top=10).answer == "5"  # no scores: nothing dropped
    assert tally(answers, {1: None}, "best").answer == "5"
    assert tally({0: "4", 1: "5"}, {0: 0.0, 1: 0.0}, "weighted").answer == "4"  # zero weights: counts, then index
    assert tally({0: "4"}, {0: 3.0}, "weighted", keep_top=1).answer == "4"  # at least one kept
    assert tally({0: None}, {}, "weighted").answer is None


def test_the_stop_rules():
    agree = Policy(stop="agree:2")
    two = tally({0: "1", 1: "1"})
    assert should_stop(agree, two, still_running=6, warmed_up=False)
    assert not should_stop(agree, tally({0: "1", 1: "2"}), 6, False)
    assert not should_stop(Policy(stop="lossless"), two, 6, False)
    assert should_stop(Policy(stop="lossless"), tally({0: "1", 1: "1", 2: "1"}), 2, False)
    assert not should_stop(Policy(stop="none"), tally({0: "1", 1: "1", 2: "1"}), 1, False)
    sure = tally({0: "1", 1: "1", 2: "2"}, {0: 10.0, 1: 9.0, 2: 0.5}, "weighted")
    deepconf = Policy(stop="confidence", vote="weighted", consensus=0.9)
    assert should_stop(deepconf, sure, 3, warmed_up=True)
    assert not should_stop(deepconf, sure, 3, warmed_up=False)
    by_count = tally({0: "1", 1: "1", 2: "2"})
    assert not should_stop(Policy(stop="confidence", consensus=0.9), by_count, 3, True)  # 2/3
    assert decided(tally({0: "1", 1: "1", 2: "1"}), 2)  # the lossless rule, still public in answers


def test_the_cut_threshold_and_where_a_branch_is_cut():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(4.6)
    assert threshold([1.0, None, 5.0], 10) == pytest.approx(1.4)
    assert threshold([None], 90) is None
    values = [5.0] * 10 + [1.0] * 10
    assert first_cut(values, size=4, limit=3.5) == 12  # the window 5,5,1,1 first falls below
    assert first_cut(values, size=4, limit=3.5, after=15) == 16  # unknown threshold before 15
    assert first_cut([5.0] * 20, size=4, limit=3.5) is None


def test_stop_rules_are_checked_and_no_early_stop_still_means_none():
    assert parse_stop("agree:4") == ("agree", 4) and parse_stop("Lossless") == ("lossless", 0)
    for bad in ("agree", "agree:0", "soon"):
        with pytest.raises(ValueError, match="agree:K"):
            parse_stop(bad)
    parser = build_parser(with_problem=False)
    config = make_config(**overrides_from_args(parser.parse_args(
        ["--stop", "agree:4", "--score", "confidence", "--vote", "weighted", "--keep-top", "90",
         "--token-budget", "5000"])))
    assert (config.stop, config.score, config.vote, config.keep_top, config.token_budget) == (
        "agree:4", "confidence", "weighted", 90.0, 5000)
    assert Policy.from_config(make_config(stop="agree:4", early_stop=False)).stop == "none"
    with pytest.raises(ConfigError, match="unknown stop rule"):
        make_config(stop="agree:")
    with pytest.raises(ConfigError, match="--score confidence"):
        make_config(vote="weighted")
    with pytest.raises(ConfigError, match="--prm-endpoint"):
        make_config(score="prm")


def test_the_record_keeps_scores_and_stop_reasons_and_old_records_still_load():
    session = Session(problem="?", branches=[Branch(index=0, prompt="tir", stop_reason="cut-low-confidence",
                                                    score=0.5, confidence_scores={"mean": 3.0},
                                                    step_scores=[StepScore(0, 0, 4, 0.9)])])
    session.vote = tally({0: "1"}, {0: 0.5}, "weighted")
    session.ended_by = "decided"
    assert Session.from_json(session.to_json()) == session
    old = session.to_dict()
    for key in ("stop_reason", "score", "confidence_scores", "step_scores"):
        del old["branches"][0][key]
    for key in ("method", "share", "dropped", "threshold"):
        del old["vote"][key]
    del old["vote"]["tally"][0]["weight"]
    del old["ended_by"]
    loaded = Session.from_dict(old)
    assert loaded.branches[0].stop_reason == "" and loaded.branches[0].step_scores == []
    assert loaded.vote.method == "majority" and loaded.vote.tally[0].weight is None


def test_a_solution_splits_into_steps_that_point_back_into_the_record():
    steps = [Step("text", text="First.\n\nLet me:\n```python\nx = 1\n\nprint(x)\n```"),
             Step("code", feedback="1"), Step("text", text="So \\boxed{1}.\n")]
    parts = solution_steps(steps)
    assert [p.text for p in parts] == ["First.", "Let me:\n```python\nx = 1\n\nprint(x)\n```",
                                       "```output\n1\n```", "So \\boxed{1}."]
    assert all(steps[p.step].text[p.start:p.end] == p.text for p in parts if steps[p.step].kind == "text")


def test_the_critics_verdict_becomes_a_score():
    assert read_verdict("All fine. \\boxed{-1}", 4).score == 1.0
    wrong = read_verdict("Paragraph 2 adds wrongly. \\boxed{2}", 4)
    assert (wrong.first_wrong, wrong.score) == (2, 0.5)
    assert read_verdict("\\boxed{0}", 4).score == 0.0
    assert read_verdict("I cannot tell.", 4).score is None
    assert read_verdict("\\boxed{9}", 4).score is None  # no such step


def test_the_lossless_stop_never_changes_the_answer_of_any_vote():
    """Every way the running branches could still answer and score, under each policy: where the
    lossless rule stops, no outcome of the rest changes the vote's answer."""
    import itertools

    finished = {0: "1", 1: "1", 2: "1", 3: "2"}
    policies = [Policy(), Policy(score="prm", vote="weighted"), Policy(score="critic", vote="weighted"),
                Policy(score="confidence", vote="weighted"), Policy(score="prm", vote="best"),
                Policy(score="prm", vote="weighted", keep_top=50)]
    for policy, scores in itertools.product(policies, ({0: 0.9, 1: 0.8, 2: 0.9, 3: 0.1},
                                                       {0: 0.2, 1: 0.1, 2: 0.3, 3: 0.95})):
        so_far = tally(finished, scores, policy.vote, policy.keep_top)
        for running in (1, 2):
            if not should_stop(policy, so_far, running, False):
                continue
            for answers in itertools.product(("1", "2", "3"), repeat=running):
                for more in itertools.product((0.0, 1.0, 30.0 if policy.score == "confidence" else 1.0),
                                              repeat=running):
                    late = {4 + i: a for i, a in enumerate(answers)}
                    full = tally({**finished, **late}, {**scores, **{4 + i: m for i, m in enumerate(more)}},
                                 policy.vote, policy.keep_top)
                    assert full.answer == so_far.answer, (policy, scores, late, more)
    strong = tally(finished, {0: 0.9, 1: 0.8, 2: 0.9, 3: 0.1}, "weighted")  # 2.6 against 0.1
    assert should_stop(Policy(score="prm", vote="weighted"), strong, 2, False)  # 2.6 > 0.1 + 2
    assert not should_stop(Policy(score="prm", vote="weighted"), strong, 3, False)
    assert not should_stop(Policy(score="confidence", vote="weighted"), strong, 1, False)  # no bound
    assert not should_stop(Policy(score="prm", vote="best"), strong, 1, False)
    assert should_stop(Policy(score="none", keep_top=50), tally(finished), 1, False)  # nothing to drop by
