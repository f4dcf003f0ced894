"""Per-token confidence: asked of the engine, kept compactly in the record, shown in every view."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from jupyter_qwq import Session, async_solve
from jupyter_qwq.confidence import (
    Trace,
    decode,
    group_confidences,
    lowest_group,
    sparkline,
    token_confidence,
)
from jupyter_qwq.views.terminal import branch_table
from jupyter_qwq.views.html import session_html

from scripted_server import Reply, ScriptedServer, branch_and_round

pytestmark = pytest.mark.timeout(120)



def test_token_confidence_is_minus_the_mean_top_logprob():
    assert token_confidence([-1.0, -2.0, -3.0]) == pytest.approx(2.0)
    assert token_confidence([-0.0]) == 0.0
    # vLLM writes -9999.0 for -inf: it is floored so one such value cannot swamp the mean
    assert token_confidence([-9999.0, -1.0]) == pytest.approx(50.5)


def test_a_trace_round_trips_in_hundredths_at_under_three_bytes_a_token():
    values = [0.004, 1.234, 17.5, 12.0, 700.0] * 400
    trace = Trace()
    trace.extend(values)
    encoded = trace.encoded()
    assert decode(encoded) == [round(min(v, 655.35), 2) for v in values]
    assert len(json.dumps(encoded)) / len(values) < 3
    assert decode("") == []


def test_group_confidence_is_the_sliding_window_mean_and_the_lowest_group_its_minimum():
    values = [10.0] * 5 + [2.0] * 3 + [10.0] * 5
    groups = group_confidences(values, window=3)
    assert len(groups) == len(values) - 2
    assert groups[0] == 10.0 and min(groups) == 2.0
    assert lowest_group(values, window=3) == 2.0
    assert lowest_group(values, window=100) == pytest.approx(sum(values) / len(values))  # one window
    assert lowest_group([]) is None


def test_the_sparkline_follows_the_trace():
    assert sparkline([1, 1, 1, 9, 9, 9], width=6) == "▁▁▁███"
    assert len(sparkline(list(range(1000)), width=16)) == 16
    assert sparkline([]) == ""


async def test_each_branch_records_its_tokens_confidence_from_the_engine(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("Adding them gives \\boxed{4}.", chunk_chars=2, confidence=5.0 + branch)

    server = scripted(script)
    session = await async_solve("2+2?", **server.options(rounds=0, branches=3, top_logprobs=5,
                                                  early_stop=False))
    assert session.engine.logprobs is True
    for stream in server.streams:
        assert stream.body["logprobs"] is True and stream.body["top_logprobs"] == 5
    for branch in session.branches:
        [step] = branch.steps
        values = decode(step.confidence)
        assert len(values) == len("Adding them gives \\boxed{4}.") // 2  # one per streamed token
        assert set(values) == {5.0 + branch.index}
        assert branch.confidence == pytest.approx(5.0 + branch.index)
    again = Session.from_json(session.to_json())
    assert again.branches[2].confidence == pytest.approx(7.0)
    assert decode(again.branches[2].steps[0].confidence) == decode(session.branches[2].steps[0].confidence)


async def test_a_long_reply_keeps_every_tokens_confidence_and_the_live_record_follows_it(scripted):
    words = 2000  # long enough that the record's trace is re-encoded as it grows, not each token

    def script(body):
        _, round_ = branch_and_round(body)
        if round_ == 1:  # the stream is left at the code block's closing fence
            return Reply("x " * words + "\n```python\nprint(4)\n```\nnever sent", chunk_chars=2,
                         confidence=3.0)
        return Reply("So \\boxed{4}.", chunk_chars=2, confidence=3.0)

    seen: list[int] = []

    def listen(event):
        if event.kind == "delta":
            seen.append(len(decode(event.session.branches[0].steps[0].confidence)))

    server = scripted(script)
    session = await async_solve("2+2?", listeners=[listen], **server.options(branches=1, top_logprobs=2))
    first, _code, last = session.branches[0].steps
    assert len(decode(first.confidence)) == first.tokens > words  # one per token read, to the fence
    assert len(decode(last.confidence)) == server.streams[1].chunks_sent
    assert session.answer == "4"
    mid_stream = seen[: words // 2]
    assert mid_stream[-1] > words // 4  # the live view saw the trace grow while it streamed


async def test_confidence_is_shown_in_the_terminal_table_and_the_static_html(scripted):
    server = scripted(lambda body: Reply("So \\boxed{4}.", chunk_chars=1, confidence=6.25))
    session = await async_solve("2+2?", **server.options(rounds=0, branches=2, top_logprobs=3))
    console = Console(width=160, record=True)
    console.print(branch_table(session))
    assert "6.2" in console.export_text() or "6.3" in console.export_text()
    assert "confidence 6.2" in session_html(session) or "confidence 6.3" in session_html(session)


async def test_an_engine_without_logprobs_is_recorded_as_such_and_nothing_breaks(scripted):
    server = scripted(lambda body: Reply("So \\boxed{4}."))  # ignores logprobs
    session = await async_solve("2+2?", **server.options(rounds=0, branches=2))
    assert session.answer == "4"
    assert session.engine.logprobs is False
    assert all(b.confidence is None and b.steps[0].confidence == "" for b in session.branches)
    assert "no log-probabilities from this engine" in session_html(session)


async def test_a_server_that_refuses_logprobs_is_asked_again_without_them():
    with ScriptedServer(lambda body: Reply("So \\boxed{4}.", confidence=3.0),
                        refuse_logprobs=True) as server:
        session = await async_solve("2+2?", **server.options(rounds=0, branches=2, early_stop=False))
    assert session.answer == "4" and session.engine.logprobs is False
    outcomes = server.outcomes()
    # the two branches' first requests race; once refused, the client stops asking
    assert 1 <= outcomes.count("refused") <= 2 and outcomes.count("completed") == 2
    assert not any(s.body.get("logprobs") for s in server.streams if s.outcome == "completed")


async def test_top_logprobs_zero_asks_for_none(scripted):
    server = scripted(lambda body: Reply("So \\boxed{4}.", confidence=3.0))
    session = await async_solve("2+2?", **server.options(rounds=0, branches=1, top_logprobs=0))
    assert "logprobs" not in server.streams[0].body
    assert session.engine.logprobs is None and session.branches[0].confidence is None
