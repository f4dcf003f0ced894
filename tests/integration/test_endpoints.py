"""Several endpoints serving one model: spread by load, a dead one taken out, each round's server recorded."""

from __future__ import annotations

import pytest

from jupyter_qwq import async_solve
from jupyter_qwq.exceptions import EngineUnreachable

from scripted_server import Reply

pytestmark = pytest.mark.timeout(120)

UNREACHABLE = "http://127.0.0.1:9/v1"


def boxed(body):
    return Reply("Adding up, the answer is \\boxed{7}.", delay=0.05)


def dying(body):
    return Reply("Adding up, the answer is \\boxed{7}.", die_after=3)


async def test_requests_spread_over_the_endpoints_and_the_record_names_each_rounds_server(scripted):
    first, second = scripted(boxed), scripted(boxed)
    session = await async_solve("3 + 4?", engine="endpoint", endpoint=[first.base_url, second.base_url],
                                branches=4, early_stop=False, seed=0)
    assert session.answer == "7"
    assert len(first.streams) == 2 and len(second.streams) == 2  # least loaded, in turn
    served = sorted(step.engine for b in session.branches for step in b.steps if step.kind == "text")
    assert served == sorted([first.base_url] * 2 + [second.base_url] * 2)
    assert session.engine.endpoints == [first.base_url, second.base_url]


async def test_an_endpoint_that_does_not_answer_is_left_out_and_the_solve_goes_on(scripted):
    live = scripted(boxed)
    session = await async_solve("3 + 4?", engine="endpoint", endpoint=f"{UNREACHABLE} {live.base_url}",
                                branches=3, early_stop=False, seed=0)
    assert session.answer == "7" and len(live.streams) == 3
    assert {step.engine for b in session.branches for step in b.steps} == {live.base_url}


async def test_a_round_lost_with_a_dying_endpoint_is_retried_on_another(scripted):
    dies, lives = scripted(dying), scripted(boxed)
    session = await async_solve("3 + 4?", engine="endpoint", endpoint=[dies.base_url, lives.base_url],
                                branches=2, early_stop=False, seed=0)
    assert [b.answer for b in session.branches] == ["7", "7"]
    assert dies.outcomes() == ["died"]  # taken out after its first broken stream: no second one
    notes = [note for b in session.branches for note in b.notes]
    assert len(notes) == 1 and "retried on another endpoint" in notes[0]
    assert {step.engine for b in session.branches for step in b.steps} == {lives.base_url}


async def test_when_no_endpoint_answers_one_line_says_which_and_why():
    with pytest.raises(EngineUnreachable, match="None of the 2 endpoints answers") as caught:
        await async_solve("3 + 4?", engine="endpoint", endpoint=[UNREACHABLE, "http://127.0.0.1:8/v1"])
    assert "127.0.0.1:9" in str(caught.value) and "127.0.0.1:8" in str(caught.value)
