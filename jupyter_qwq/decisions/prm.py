"""Scores from a process reward model served by vLLM (e.g. Qwen/Qwen2.5-Math-PRM-7B).

The request (engines.md §3): `POST /pooling` with task `token_classify` and the chat form, the
assistant's content being the solution's steps each followed by `<extra_0>`. The response has one
`[p_bad, p_good]` row per `<extra_0>`; a step's reward is `p_good`. A branch's score is the
minimum (or the product) of its steps' rewards.

The PRM's context is short (4,096 tokens for Qwen's): a longer solution is cut from the front,
keeping its last steps, and the branch's record says how many were left out. Its tokenizer is
not known here, so the fit is estimated at 3 characters a token; if the server still finds the
prompt too long, the first half of what is left is dropped and the request tried again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from ..exceptions import EngineError, EngineUnreachable

STEP_TAG = "<extra_0>"
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
CHARS_PER_TOKEN = 3  # an estimate on the safe side: math text is 3-4 characters a token
TEMPLATE_TOKENS = 64  # the chat template's own tokens


@dataclass
class Rewards:
    rewards: list[float]  # one per scored step: the last len(rewards) of the steps given
    skipped: int  # steps cut from the front to fit the PRM's context


class PrmClient:
    """A process reward model at `endpoint` (vLLM's base URL; a trailing /v1 is fine)."""

    def __init__(self, endpoint: str, model: str, context: int = 4096, api_key: str = "",
                 timeout: float = 120.0) -> None:
        self.base_url = endpoint.rstrip("/").removesuffix("/v1")
        self.model = model
        self.context = context
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                       timeout=httpx.Timeout(timeout, connect=10.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def rewards(self, problem: str, steps: Sequence[str]) -> Rewards:
        """The reward of each step that fits the context (the last ones)."""
        skipped = _first_that_fits(problem, steps, self.context)
        while True:
            kept = list(steps[skipped:])
            if not kept:
                return Rewards([], len(steps))
            response = await self._post(problem, kept)
            if response.status_code == 400 and _too_long(response.text) and len(kept) > 1:
                skipped += max(1, len(kept) // 2)
                continue
            return Rewards(self._parse(response, len(kept)), skipped)

    async def _post(self, problem: str, steps: list[str]) -> httpx.Response:
        body = {"model": self.model, "task": "token_classify", "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": problem},
            {"role": "assistant", "content": "".join(f"{step}{STEP_TAG}" for step in steps)},
        ]}
        try:
            return await self._http.post("/pooling", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise EngineUnreachable(
                f"No process reward model answers at {self.base_url} ({type(error).__name__}). "
                "Start one (`vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling --port 8001`) "
                "or check --prm-endpoint."
            ) from None
        except httpx.TransportError as error:
            raise EngineError(f"The PRM at {self.base_url} failed mid-request ({type(error).__name__}); "
                              "check its log.") from None

    def _parse(self, response: httpx.Response, expected: int) -> list[float]:
        if response.status_code >= 400:
            raise EngineError(f"The PRM at {self.base_url} answered HTTP {response.status_code}: "
                              f"{response.text[:300].strip()} (is --prm-model {self.model!r} served "
                              "there, with --runner pooling?)")
        try:
            rows = response.json()["data"][0]["data"]
            rewards = [float(row[1]) for row in rows]
        except (ValueError, KeyError, IndexError, TypeError):
            raise EngineError(f"The PRM at {self.base_url} sent no [p_bad, p_good] rows: "
                              f"{response.text[:200]!r}. Is {self.model!r} a process reward model?") from None
        if len(rewards) != expected:
            raise EngineError(f"The PRM at {self.base_url} scored {len(rewards)} steps of {expected}: "
                              f"is {self.model!r} a PRM whose step tag is {STEP_TAG}?")
        return rewards


def aggregate(rewards: Sequence[float], how: str = "min") -> float | None:
    """A branch's score from its steps' rewards: the minimum or the product."""
    if not rewards:
        return None
    return min(rewards) if how == "min" else math.prod(rewards)


def _first_that_fits(problem: str, steps: Sequence[str], context: int) -> int:
    room = context * CHARS_PER_TOKEN - len(SYSTEM) - len(problem) - TEMPLATE_TOKENS * CHARS_PER_TOKEN
    used, first = 0, len(steps)
    for index in range(len(steps) - 1, -1, -1):
        used += len(steps[index]) + len(STEP_TAG) * CHARS_PER_TOKEN
        if used > room:
            break
        first = index
    return first


def _too_long(message: str) -> bool:
    lowered = message.lower()
    return "context length" in lowered or "too long" in lowered or "maximum" in lowered
