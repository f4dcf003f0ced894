"""--answer-type/--answer-range against a scripted server: the model is told, and answers outside
the constraint stay in the record, marked, but do not vote."""

from __future__ import annotations

import pytest

from jupyter_qwq import Session, async_solve
from jupyter_qwq.exceptions import ConfigError
from jupyter_qwq.views.export.cells import export_session
from jupyter_qwq.views.facts import branch_answer

from scripted_server import Reply, branch_and_round

pytestmark = pytest.mark.timeout(120)

# Three branches agree on an answer outside 0:99999 and one on a fraction; two say 12.
ANSWERS = ["100000", "100000", "100000", "12", "\\frac{7}{2}", "12"]


def _script(body):
    branch, _ = branch_and_round(body)
    return Reply(f"So the answer is \\boxed{{{ANSWERS[branch]}}}.")


async def test_answers_outside_the_constraint_do_not_vote(scripted):
    server = scripted(_script)
    options = server.options(branches=len(ANSWERS), rounds=0, early_stop=False)

    unconstrained = await async_solve("How many?", **options)
    assert unconstrained.answer == "100000"

    session = await async_solve("How many?", **options, answer_type="integer",
                                answer_range="0:99999")
    assert session.answer == "12"
    assert [(t.answer, t.branches) for t in session.vote.tally] == [("12", [3, 5])]
    # The outside answers are kept, and say why they did not vote, in the record and the views.
    outside = {b.index: b.answer_outside for b in session.branches if b.answer_outside}
    assert outside == {0: "outside 0:99999", 1: "outside 0:99999", 2: "outside 0:99999",
                       4: "not an integer"}
    assert session.branches[0].answer == "100000"
    assert branch_answer(session.branches[0]) == "100000 (outside 0:99999)"
    assert Session.from_dict(session.to_dict()).branches[4].answer_outside == "not an integer"
    exported = "\n".join(cell.source for cell in export_session(session, branch="all"))
    assert "(does not vote: outside 0:99999)" in exported
    # Every branch was told what the answer must be; the unconstrained solve told none.
    told = [s.body["messages"][-1]["content"] for s in server.streams]
    constrained_requests = told[len(ANSWERS):]
    assert all("The answer is an integer from 0 to 99999." in m for m in constrained_requests)
    assert not any("The answer is" in m for m in told[: len(ANSWERS)])


async def test_a_bad_range_is_refused_before_anything_runs(scripted):
    server = scripted(_script)
    with pytest.raises(ConfigError, match="LO:HI, e.g. 0:99999"):
        await async_solve("?", **server.options(answer_range="0-99999"))
    with pytest.raises(ConfigError, match="low end must not exceed its high end"):
        await async_solve("?", **server.options(answer_range="10:1"))
    assert server.streams == []
