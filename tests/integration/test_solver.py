"""The solver's logic against a scripted OpenAI-compatible server, with real subkernels."""

from __future__ import annotations

import time

import pytest

from jupyter_qwq import Session, async_solve
from jupyter_qwq.exceptions import ConfigError, EngineDied, EngineError, EngineUnreachable, KernelError
from jupyter_qwq.session import BranchStatus, SolveStatus

from processes import settled
from scripted_server import Reply, branch_and_round, code_then_box, last_output

pytestmark = pytest.mark.timeout(120)



async def test_code_runs_in_a_subkernel_and_its_output_reaches_the_model(scripted):
    server = scripted(code_then_box)
    session = await async_solve("What is 6 times 7?", **server.options(branches=2))
    assert session.answer == "42"
    branch = session.branches[0]
    assert [s.kind for s in branch.steps] == ["text", "code", "text"]
    code = branch.steps[1]
    assert code.code == "print(6 * 7)"
    assert code.outputs == [{"output_type": "stream", "name": "stdout", "text": "42\n"}]
    assert code.execution == "ok"
    # The reply was cut at the end of the code block: the model's guess after it is not kept.
    assert branch.steps[0].text.endswith("```")
    assert "```output\n42\n```" in server.streams[-1].body["messages"][-1]["content"]


async def test_a_branch_keeps_its_variables_across_rounds_but_not_across_branches(scripted):
    def script(body):
        branch, round_ = branch_and_round(body)
        if round_ == 1:
            return Reply(f"```python\nx = {10 + branch}\nprint('set')\n```")
        if round_ == 2:
            return Reply("```python\nprint(x * 2)\n```")
        return Reply(f"\\boxed{{{last_output(body)}}}")

    server = scripted(script)
    session = await async_solve("Double x.", **server.options(branches=2, early_stop=False))
    assert sorted(b.answer for b in session.branches) == ["20", "22"]


async def test_equivalent_answers_are_voted_together(scripted):
    answers = ["\\frac{1}{2}", "0.5", "1/2", "3"]

    def script(body):
        branch, _ = branch_and_round(body)
        return Reply(f"So the answer is \\boxed{{{answers[branch]}}}.")

    server = scripted(script)
    session = await async_solve("Half?", **server.options(branches=4, rounds=0, early_stop=False))
    top = session.vote.tally[0]
    assert top.count == 3 and sorted(top.branches) == [0, 1, 2]
    assert session.vote.agreement == pytest.approx(0.75)


async def test_a_kernel_that_cannot_start_fails_only_the_branch_that_needed_it(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        if branch == 0:
            return Reply("Let me compute.\n```python\nprint(6 * 7)\n```")
        return Reply("Six sevens are \\boxed{42}.")

    server = scripted(script)
    session = await async_solve("What is 6 times 7?", **server.options(
        branches=2, early_stop=False, kernel_name="no-such-kernel-qwq"))
    coder, writer = session.branches
    assert session.answer == "42" and writer.status == BranchStatus.ANSWERED
    assert coder.status == BranchStatus.FAILED and "kernelspec list" in coder.error
    assert [s.execution for s in coder.steps if s.kind == "code"] == ["no-kernel"]


async def test_when_no_branch_could_run_its_code_the_solve_fails_with_the_kernels_error(scripted):
    server = scripted(code_then_box)
    with pytest.raises(KernelError, match="kernelspec list") as failed:
        await async_solve("What is 6 times 7?", **server.options(branches=2, kernel_name="no-such-kernel-qwq"))
    assert all(b.status == BranchStatus.FAILED for b in failed.value.session.branches)


async def test_early_stop_cancels_the_rest_and_closes_their_streams(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        if branch < 3:
            return Reply("\\boxed{7}")
        return Reply("thinking " * 400, delay=0.02)  # would take ~8 s

    server = scripted(script)
    started = time.monotonic()
    session = await async_solve("?", **server.options(branches=5, rounds=0))
    elapsed = time.monotonic() - started
    await settled(lambda: server.open_streams() == 0)
    outcomes = server.outcomes()
    assert session.answer == "7" and session.vote.decided_early
    assert [b.status for b in session.branches[3:]] == [BranchStatus.STOPPED] * 2
    assert elapsed < 5
    assert outcomes.count("aborted") == 2


async def test_no_early_stop_runs_every_branch(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("\\boxed{7}" if branch < 3 else "\\boxed{8}", delay=0.01 * branch)

    server = scripted(script)
    session = await async_solve("?", **server.options(branches=5, rounds=0, early_stop=False))
    assert all(b.status is BranchStatus.ANSWERED for b in session.branches)
    assert not session.vote.decided_early
    assert [(t.answer, t.count) for t in session.vote.tally] == [("7", 3), ("8", 2)]


async def test_branches_run_independently_not_in_lockstep(scripted):
    def script(body):
        branch, round_ = branch_and_round(body)
        if branch == 0 and round_ == 1:
            return Reply("```python\nimport time; time.sleep(1.5); print(1)\n```")
        return Reply("\\boxed{1}")

    server = scripted(script)
    session = await async_solve("?", **server.options(branches=2, early_stop=False))
    slow, fast = session.branches
    assert fast.ended < slow.steps[1].started + slow.steps[1].duration  # done while 0 still ran code


async def test_a_model_that_never_boxes_is_nudged_once_then_recorded_without_answer(scripted):
    server = scripted(lambda body: Reply("I am not sure about this one."))
    session = await async_solve("?", **server.options(branches=1, rounds=0))
    branch = session.branches[0]
    assert branch.status is BranchStatus.NO_ANSWER and branch.answer is None
    assert len(server.streams) == 2
    assert "\\boxed{}" in server.streams[1].body["messages"][-1]["content"]
    assert session.answer is None and session.status is SolveStatus.DONE


async def test_a_fallback_answer_is_marked_as_such(scripted):
    server = scripted(lambda body: Reply("The total is 12"))
    session = await async_solve("?", **server.options(branches=1, rounds=0))
    assert session.branches[0].answer == "12"
    assert session.branches[0].answer_source.startswith("fallback")


async def test_code_that_hangs_is_interrupted_and_the_model_is_told(scripted):
    def script(body):
        _, round_ = branch_and_round(body)
        if round_ == 1:
            return Reply("```python\nwhile True:\n    pass\n```")
        return Reply("\\boxed{0}")

    server = scripted(script)
    session = await async_solve("?", **server.options(branches=1, code_timeout=1.0))
    code = session.branches[0].steps[1]
    assert code.execution == "timeout"
    assert "timed out" in server.streams[1].body["messages"][-1]["content"].lower()
    assert session.answer == "0"


async def test_reasoning_is_kept_apart_from_the_answer_text(scripted):
    fields = ["reasoning", "reasoning_content"]

    def script(body):
        branch, _ = branch_and_round(body)
        if branch == 2:
            return Reply("<think>Two and two.</think>The answer is \\boxed{4}.")
        return Reply("The answer is \\boxed{4}.", reasoning="Two and two.", reasoning_field=fields[branch])

    server = scripted(script)
    session = await async_solve("2+2?", **server.options(branches=3, rounds=0, early_stop=False))
    for branch in session.branches:
        assert branch.steps[0].reasoning == "Two and two."
        assert branch.steps[0].text == "The answer is \\boxed{4}."


async def test_every_sampling_field_is_sent_explicitly(scripted):
    server = scripted(lambda body: Reply("\\boxed{1}"))
    await async_solve("?", **server.options(branches=2, rounds=0, temperature=0.6, top_p=0.9,
                                     min_p=0.1, top_k=20, max_tokens=300, seed=5))
    bodies = sorted((s.body for s in server.streams), key=lambda b: b["seed"])
    assert [b["seed"] for b in bodies] == [5, 6]
    for body in bodies:
        assert body["stream"] is True
        assert (body["temperature"], body["top_p"], body["min_p"], body["top_k"]) == (0.6, 0.9, 0.1, 20)
        assert body["max_tokens"] == 300 and "```output" in body["stop"]


async def test_a_server_that_dies_mid_stream_fails_the_solve_and_keeps_the_record(scripted):
    server = scripted(lambda body: Reply("x" * 200, die_after=3))
    with pytest.raises(EngineDied) as caught:
        await async_solve("?", **server.options(branches=2, rounds=0))
    session = caught.value.session
    assert session.status is SolveStatus.FAILED and "closed the stream" in session.error
    assert BranchStatus.FAILED in [b.status for b in session.branches]


async def test_an_engine_that_dies_mid_stream_is_told_apart_from_a_bad_request(scripted):
    """vLLM sends an error event when its engine process dies: that is the engine dying (a
    managed server is then restarted), not an error in what was asked."""
    server = scripted(lambda body: Reply("x" * 200, error_after=3))
    with pytest.raises(EngineDied, match="engine died mid-reply: EngineCore"):
        await async_solve("?", **server.options(branches=1, rounds=0))
    server = scripted(lambda body: Reply("x" * 200, error_after=3, error_message="prompt is too long"))
    with pytest.raises(EngineError, match="prompt is too long") as caught:
        await async_solve("?", **server.options(branches=1, rounds=0))
    assert not isinstance(caught.value, EngineDied)


async def test_the_time_limit_stops_slow_branches_and_keeps_the_answers_so_far(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("\\boxed{3}") if branch == 0 else Reply("slow " * 500, delay=0.02)

    server = scripted(script)
    started = time.monotonic()
    session = await async_solve("?", **server.options(branches=3, rounds=0, time_limit=1.5))
    elapsed = time.monotonic() - started
    assert session.status is SolveStatus.TIMED_OUT and "time limit" in session.error
    assert session.answer == "3" and elapsed < 5
    assert [b.status for b in session.branches[1:]] == [BranchStatus.STOPPED] * 2


async def test_an_unreachable_endpoint_says_what_to_do():
    with pytest.raises(EngineUnreachable, match="Nothing answers at http://127.0.0.1:9/v1"):
        await async_solve("1+1?", engine="endpoint", endpoint="http://127.0.0.1:9/v1")


@pytest.mark.parametrize("problem", ["", "   \n  ", "a\x00b"])
async def test_bad_problems_are_refused_before_anything_starts(problem):
    with pytest.raises(ConfigError):
        await async_solve(problem, engine="endpoint", endpoint="http://127.0.0.1:9/v1")


async def test_bad_option_values_are_refused():
    with pytest.raises(ConfigError, match="branches"):
        await async_solve("?", branches=0, engine="endpoint", endpoint="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="unknown option"):
        await async_solve("?", brnaches=3)


async def test_the_record_round_trips_and_holds_no_secret(scripted):
    server = scripted(code_then_box, api_key="sk-secret-123")
    session = await async_solve("6*7?", **server.options(branches=2, api_key="sk-secret-123"))
    text = session.to_json()
    assert "sk-secret-123" not in text
    again = Session.from_json(text)
    assert again == session
    assert again.to_dict()["vote"]["tally"][0] == {"answer": "42", "count": 2, "branches": [0, 1], "weight": 2.0}

