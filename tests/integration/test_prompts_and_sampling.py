"""How branches talk to the model: the TIR protocol, prompt mixes, sampling per model family, and
which answers vote. Against the scripted server, with real subkernels."""

from __future__ import annotations

import pytest

from jupyter_qwq import async_solve
from jupyter_qwq.prompts import conversation
from jupyter_qwq.sampling import family_of

from scripted_server import Reply, branch_and_round, code_then_box

pytestmark = pytest.mark.timeout(120)



def second_round(server):
    return [s.body for s in server.streams if branch_and_round(s.body)[1] == 2]


async def test_code_output_is_appended_to_the_assistant_turn_which_the_model_continues(scripted):
    server = scripted(code_then_box)
    session = await async_solve("6*7?", **server.options(branches=2, prompts="tir",
                                                  early_stop=False))
    assert session.answer == "42"
    assert all(b.protocol == "continue" for b in session.branches)
    for body in second_round(server):
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["system", "user", "assistant"]  # no new user turn
        assert body["messages"][-1]["content"] == (
            "Let me compute.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\n")
        assert "```output block" in body["messages"][0]["content"]  # the system prompt says so


async def test_the_chat_protocol_sends_the_output_as_a_user_message(scripted):
    server = scripted(code_then_box)
    session = await async_solve("6*7?", **server.options(branches=1, prompts="tir", rounds=2,
                                                  tool_protocol="chat"))
    assert session.answer == "42" and session.branches[0].protocol == "chat"
    [body] = second_round(server)
    assert "continue_final_message" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][-1]["content"].startswith("```output\n42\n```\nYou have 1 code execution left.")


async def test_an_endpoint_that_cannot_continue_a_turn_gets_chat_turns_and_the_record_says_so(scripted):
    server = scripted(code_then_box, refuse_continue=True)
    session = await async_solve("6*7?", **server.options(branches=1, prompts="tir"))
    [branch] = session.branches
    assert session.answer == "42" and branch.protocol == "chat"
    assert any("cannot continue a turn" in note for note in branch.notes)
    assert [s.kind for s in branch.steps] == ["text", "code", "text"]  # the refused round left no trace


def test_a_nudge_closes_the_open_turn_before_asking():
    opening = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    history = [("reply", "a```python\nx\n```"), ("output", "1", 0), ("reply", " so no box"), ("nudge",)]
    messages, continues = conversation(opening, history, "continue")
    assert not continues
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "a```python\nx\n```\n```output\n1\n```\n so no box"


@pytest.mark.parametrize(("mix", "kinds"), [("tir", {"tir"}), ("cot", {"cot"}), ("mixed", {"tir", "cot"})])
async def test_the_prompt_mix_decides_which_branches_may_run_code(scripted, mix, kinds):
    server = scripted(lambda body: Reply("\\boxed{1}"))
    session = await async_solve("?", **server.options(branches=3, prompts=mix, hints=False,
                                               early_stop=False))
    assert {b.prompt for b in session.branches} == kinds  # no "+hint" without hints


@pytest.mark.parametrize(("model", "expected", "greedy"), [
    ("Qwen/QwQ-32B", {"temperature": 0.6, "top_p": 0.95, "top_k": 40, "min_p": 0.0}, False),
    ("qwen2.5-math-7b-instruct", {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0}, True),
    ("some-other-model", {"temperature": 0.7, "top_p": 0.95, "top_k": 0, "min_p": 0.05}, True),
])
async def test_sampling_follows_the_model_family_unless_set(scripted, model, expected, greedy):
    server = scripted(lambda body: Reply("\\boxed{1}"), model=model)
    session = await async_solve("?", **server.options(branches=3, rounds=0, early_stop=False))
    chosen = await async_solve("?", **server.options(branches=2, rounds=0, early_stop=False,
                                              temperature=1.1))
    bodies = sorted((s.body for s in server.streams[:3]), key=lambda b: b["seed"])
    for body in bodies[1:]:
        assert {name: body[name] for name in expected} == expected
    assert bodies[0]["temperature"] == (0.0 if greedy else expected["temperature"])
    assert session.branches[0].sampling["temperature"] == bodies[0]["temperature"]
    assert session.config["sampling_defaults"].startswith(family_of(model).name)
    assert {s.body["temperature"] for s in server.streams[3:]} == {1.1}  # the user's value wins
    assert chosen.config["temperature"] == 1.1


async def test_fallback_answers_are_kept_but_do_not_vote_unless_asked(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("\\boxed{7}" if branch == 0 else "I think the total is 12")

    server = scripted(script)
    default = await async_solve("?", **server.options(branches=3, rounds=0, early_stop=False))
    counted = await async_solve("?", **server.options(branches=3, rounds=0, early_stop=False,
                                               vote_fallbacks=True))
    assert [b.answer for b in default.branches] == ["7", "12", "12"]
    assert [b.answer_source for b in default.branches][1:] == ["fallback:last-number"] * 2
    assert default.answer == "7" and [t.answer for t in default.vote.tally] == ["7"]
    assert counted.answer == "12"
