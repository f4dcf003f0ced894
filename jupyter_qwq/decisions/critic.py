"""A critic: the chat engine itself asked, as in ProcessBench (arXiv 2412.06559), for the first
wrong step of a branch's solution, or none.

Its verdict becomes a score: 1 when it finds no wrong step, else the share of the steps before
the first wrong one (an error in the last step scores higher than one in the first). The
steps before the wrong one score 1 each, the wrong one 0, in the record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..answers import extract_answer
from ..engines.client import Sampling, Usage

if TYPE_CHECKING:
    from ..engines.client import EngineClient

PROMPT = """Below is a math problem and a proposed solution, split into numbered paragraphs.

[Problem]
{problem}

[Solution]
{paragraphs}

Check the solution paragraph by paragraph. If a paragraph contains an error (a wrong
calculation, a wrong step of logic, or a misreading of the problem), give the number of the
first such paragraph. If every paragraph is correct, give -1.
Put only that number in \\boxed{{}}."""


@dataclass
class Verdict:
    first_wrong: int | None  # index of the first wrong step; None: none found
    score: float | None  # None when the critic gave no readable verdict
    said: str  # the critic's reply
    tokens: int = 0  # what the critic wrote: a cost of the decision, not of the branch


def critic_messages(problem: str, steps: Sequence[str]) -> list[dict[str, str]]:
    paragraphs = "\n\n".join(f"<paragraph_{i}>\n{text}\n</paragraph_{i}>" for i, text in enumerate(steps))
    return [{"role": "user", "content": PROMPT.format(problem=problem, paragraphs=paragraphs)}]


def read_verdict(reply: str, count: int) -> Verdict:
    """The critic's boxed index: -1 (or 'none') means no wrong step."""
    found = extract_answer(reply)
    text = found.answer.strip() if found is not None else ""
    if re.fullmatch(r"(?i)none|no error|-1", text):
        return Verdict(None, 1.0, reply)
    number = re.fullmatch(r"-?\d+", text)
    if number is None or not 0 <= int(text) < max(count, 1):
        return Verdict(None, None, reply)
    first = int(text)
    return Verdict(first, first / count, reply)


async def critique(client: EngineClient, problem: str, steps: Sequence[str], max_tokens: int,
                   seed: int | None = None) -> Verdict:
    """Ask the engine, greedily, where the solution first goes wrong."""
    sampling = Sampling(temperature=0.0, top_p=1.0, min_p=0.0, top_k=0, max_tokens=max_tokens, seed=seed)
    reply, usage = "", Usage()
    async for delta in client.stream_chat(critic_messages(problem, steps), sampling, usage):
        reply += delta.content
    verdict = read_verdict(reply, len(steps))
    verdict.tokens = usage.completion_tokens
    return verdict
