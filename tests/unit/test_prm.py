"""The process reward model client, against a server that speaks vLLM's documented /pooling."""

from __future__ import annotations

import pytest
from prm_server import PrmServer

from jupyter_qwq.decisions.prm import PrmClient, aggregate
from jupyter_qwq.exceptions import EngineError, EngineUnreachable

pytestmark = pytest.mark.timeout(60)


def reward(step: str) -> float:
    return 0.1 if "wrong" in step else 0.9


async def test_each_step_is_tagged_and_gets_the_probability_of_the_good_label():
    with PrmServer(reward) as server:
        client = PrmClient(server.url + "/v1", "Qwen/Qwen2.5-Math-PRM-7B")
        found = await client.rewards("2+2?", ["Two and two.", "That is 5, wrong.", "\\boxed{4}"])
        await client.aclose()
    assert found.rewards == [0.9, 0.1, 0.9] and found.skipped == 0
    body = server.requests[0]
    assert body["task"] == "token_classify"
    assert body["messages"][2]["content"] == "Two and two.<extra_0>That is 5, wrong.<extra_0>\\boxed{4}<extra_0>"
    assert aggregate(found.rewards, "min") == 0.1
    assert aggregate(found.rewards, "product") == pytest.approx(0.081)
    assert aggregate([], "min") is None


async def test_a_trace_longer_than_the_context_is_cut_from_the_front():
    steps = [f"step {i}: " + "x" * 400 for i in range(40)]  # ~16k characters
    with PrmServer(reward) as server:
        client = PrmClient(server.url, "Qwen/Qwen2.5-Math-PRM-7B", context=2048)
        found = await client.rewards("?", steps)
        await client.aclose()
    assert 0 < found.skipped < 40 and len(found.rewards) == 40 - found.skipped
    assert server.requests[0]["messages"][2]["content"].startswith(f"step {found.skipped}:")
    assert server.requests[0]["messages"][2]["content"].count("<extra_0>") == len(found.rewards)


async def test_when_the_server_still_finds_it_too_long_the_front_half_is_dropped_and_retried():
    steps = [f"s{i} " + "y" * 100 for i in range(8)]
    with PrmServer(reward, context_chars=500) as server:
        client = PrmClient(server.url, "Qwen/Qwen2.5-Math-PRM-7B", context=100_000)
        found = await client.rewards("?", steps)
        await client.aclose()
    assert len(server.requests) > 1 and found.skipped >= 4
    assert len(found.rewards) == 8 - found.skipped


async def test_a_wrong_model_or_no_server_says_what_to_do():
    with PrmServer(reward) as server:
        client = PrmClient(server.url, "some-chat-model")
        with pytest.raises(EngineError, match="HTTP 404.*--prm-model"):
            await client.rewards("?", ["a"])
        await client.aclose()
    client = PrmClient("http://127.0.0.1:9", "m")
    with pytest.raises(EngineUnreachable, match="--prm-endpoint"):
        await client.rewards("?", ["a"])
    await client.aclose()
