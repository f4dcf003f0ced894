"""What a user sees of a solve's decisions in the static HTML and the terminal: each branch's
score and why it stopped, each answer's weight, what --keep-top dropped, why the solve ended, and
each step coloured by its PRM reward with its figure. A default solve shows none of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from decided import CUT_NOTE, decided_session, facts_of
from reading import reading_session
from rich.console import Console

from jupyter_qwq.session import Session
from jupyter_qwq.views.facts import reward_colour
from jupyter_qwq.views.html import session_html
from jupyter_qwq.views.terminal import print_summary
from jupyter_qwq.views.widgets import live_card_html, vote_html

CASES = Path(__file__).resolve().parents[2] / "labextension" / "test" / "facts_cases.json"


def _terminal(session: Session) -> str:
    console = Console(width=220, record=True, highlight=False, color_system=None)
    print_summary(console, session)
    return console.export_text()


def _text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def test_the_python_views_word_every_case_as_the_explorer_is_tested_to():
    cases = json.loads(CASES.read_text())["cases"]
    assert len(cases) >= 5
    for case in cases:
        assert facts_of(Session.from_dict(case["record"])) == case["expect"], case["name"]


def test_the_static_html_shows_weights_drops_reasons_and_scores():
    html = session_html(decided_session("prm"))
    text = _text(html)
    assert re.search(r"<th>weight</th>.*<td>2</td><td>weight 1.23</td>", html)
    assert "branch 2 answered but did not vote: outside the top 75% by score (--keep-top)" in text
    assert "ended early: the leading answer held 100% of the weight (--consensus 0.95)" in text
    assert "weighted vote: an answer weighs the sum of its branches' scores (PRM min)" in text
    for shown in ("PRM min 0.88", "PRM min 0.35", "PRM min 0.13", "cut by low confidence at token 230",
                  "stopped early: the vote was decided"):
        assert shown in text
    confidence = _text(session_html(decided_session("confidence")))
    assert "lowest group confidence 17.83" in confidence
    assert "cut by low confidence at token 230 (its window fell below 12.50)" in confidence
    assert "weight 34.03" in confidence and "weight 9.41" in confidence
    assert CUT_NOTE in confidence  # what the record says happened to the branch, in its body


def test_each_scored_step_is_coloured_by_its_reward_with_its_figure():
    html = session_html(decided_session("prm"))
    branch1 = html[html.index("Branch 1 ·"):html.index("Branch 2 ·")]
    badges = re.findall(r"<div class='reward' style='border-left-color:(#[0-9a-f]{6})' data-step='(\d)'>"
                        r"<span class='reward-badge' style='border-color:(#[0-9a-f]{6})' title='([^']*)'[^>]*>([^<]*)</span>",
                        branch1)
    # every step, the code block the text ended with and the code's output included, in order
    assert [(step, figure) for _, step, _, _, figure in badges] == [
        ("1", "0.90"), ("2", "0.35"), ("3", "0.80"), ("4", "0.85"), ("5", "0.62")]
    border, _, badge, title, _ = badges[1]
    assert border == badge == "#a88124"  # 0.35: amber, nearer red than green
    assert badges[0][0] == "#3ea824"  # 0.90: green
    assert title == "step 2: PRM reward 0.35 (probability it is right)"
    assert re.search(r"data-step='2'>.*?<p>That is \$7\+7\+7\+7\+7\+7 = 42\$\.</p>", branch1, re.DOTALL)
    assert re.search(r"data-step='3'>.*?<code>.*print.*</code></pre></div>", branch1, re.DOTALL)
    assert re.search(r"data-step='4'>.*?<pre>42\n</pre></div>", branch1, re.DOTALL)


def test_rewards_run_from_red_through_amber_to_green():
    assert [reward_colour(s) for s in (0.0, 0.35, 0.5, 0.9, 1.0, -1.0, 2.0)] == [
        "#a82424", "#a88124", "#a8a824", "#3ea824", "#24a824", "#a82424", "#24a824"]


def test_the_terminal_shows_scores_reasons_rewards_and_weights():
    shown = _terminal(decided_session("prm"))
    assert re.search(r"score +why it stopped +step rewards", shown)
    assert re.search(r"answered .* 42 +PRM min 0.35 +0.90 0.35 0.80 0.85 0.62", shown)
    assert "did not vote: outside the top 75% by score (--keep-top)" in shown
    assert "cut by low confidence at token 230" in shown
    assert "vote: 42 ×2 (weight 1.23)" in shown
    assert "ended early: the leading answer held 100% of the weight" in shown


def test_the_live_card_shows_step_chips_and_the_vote_its_weights():
    session = decided_session("prm")
    card = live_card_html(session.branches[1], session)
    chips = re.findall(r"title='(step \d: [^']*)' style='[^']*border-color:(#[0-9a-f]{6})'>([^<]*)</span>", card)
    assert [figure for _, _, figure in chips] == ["0.90", "0.35", "0.80", "0.85", "0.62"]
    assert chips[1][1] == "#a88124"
    assert "PRM min 0.35" in card
    cut = live_card_html(session.branches[3], session)
    assert "cut by low confidence at token 230" in cut
    vote = vote_html(session)
    assert "weight 1.23" in vote and "branch 2 answered but did not vote" in _text(vote)


def test_a_default_solve_shows_no_decision_noise():
    session = reading_session()
    session.config.update(score="none", vote="majority", stop="lossless", keep_top=100.0)
    session.ended_by = "finished"
    for branch in session.branches:
        branch.stop_reason = "answered"
    views = [_text(session_html(session)), _terminal(session), _text(live_card_html(session.branches[0], session)),
             _text(vote_html(session))]
    for view in views:
        for noise in ("score", "weight", "did not vote", "reward", "stopped early", "cut by", "ended"):
            assert noise not in view, (noise, view)
    assert "reward" not in live_card_html(session.branches[0], session)  # no chip row


def test_an_exported_notebook_says_the_weights_scores_and_why_branches_stopped():
    from jupyter_qwq.views.export.cells import export_session

    cells = export_session(decided_session("confidence"), branch="all")
    text = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    assert "| answer | votes | weight | branches |" in text
    assert "| $42$ | 2 | 34.03 | 0, 1 |" in text and "| $41$ | 1 | 9.41 | 2 |" in text
    assert "lowest group confidence 16.20" in text
    assert "cut by low confidence at token 230 (its window fell below 12.50)" in text
    plain = "\n".join(cell.source for cell in export_session(reading_session(), branch="all")
                      if cell.cell_type == "markdown")
    assert "| answer | votes | branches |" in plain and "weight" not in plain


def test_one_line_and_terminal_agreement_round_as_the_explorer_does():
    from jupyter_qwq.answers import vote
    from jupyter_qwq.views.facts import summary

    answers = ["3", "4", "5", "6", "7", "8", "9", "10"]  # 1 of 8 agree: 12.5 %, which JS shows as 13 %
    session = Session(problem="?", vote=vote(answers))
    assert "(13% agreement, " in summary(session)
    assert "(agreement 13%)" in _terminal(session)
