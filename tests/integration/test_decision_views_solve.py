"""The views of a real PRM-scored solve (a scripted chat server, a scripted PRM, real subkernels):
every step the PRM scored is drawn once, coloured, with its figure, in the static HTML, the
code the text ended with and the output the model read included."""

from __future__ import annotations

import re

import pytest
from prm_server import PrmServer
from scripted_server import Reply, branch_and_round, last_output

from jupyter_qwq import async_solve
from jupyter_qwq.views.facts import reward_colour
from jupyter_qwq.views.html import session_html

pytestmark = pytest.mark.timeout(180)


async def test_every_scored_step_of_a_solve_with_code_is_shown_once_with_its_reward(scripted):
    def script(body):
        branch, round_ = branch_and_round(body)
        if round_ == 1:
            slip = "Seven sixes make 48, a wrong product." if branch == 1 else "Seven sixes make 42."
            return Reply(f"Six times seven.\n\n{slip}\n\nCheck it:\n\n```python\nprint(6 * 7)\n```")
        return Reply(f"The code printed {last_output(body).strip()}.\n\nSo \\boxed{{42}}.")

    with PrmServer(lambda step: 0.05 if "wrong" in step else 0.9) as prm:
        server = scripted(script)
        session = await async_solve("6*7?", **server.options(
            branches=2, rounds=1, prompts="tir", stop="none", score="prm", prm_endpoint=prm.url,
            vote="weighted"))
    html = session_html(session)
    for branch in session.branches:
        shown = html[html.index(f"Branch {branch.index} ·"):]
        shown = shown[:shown.index("</details>\n")] if "</details>\n" in shown else shown
        steps = re.findall(r"data-step='(\d+)'>.*?>([0-9.]+)</span>", shown)
        assert len(branch.step_scores) >= 6  # paragraphs, the code, its output, the answer
        assert [int(n) for n, _ in steps] == list(range(1, len(branch.step_scores) + 1)), steps
        assert [figure for _, figure in steps] == [f"{s.score:.2f}" for s in branch.step_scores]
        assert "<pre>42\n</pre>" in shown  # the code's real output, in its scored step
    wrong = session.branches[1]
    assert f"PRM min {wrong.score:.2f}" in html and wrong.score == pytest.approx(0.05)
    assert f"border-left-color:{reward_colour(0.05)}' data-step='2'" in html
