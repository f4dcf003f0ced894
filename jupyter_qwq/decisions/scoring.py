"""Scores a finished branch as the settings ask, writing them into its record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..confidence import branch_trace
from ..session import Branch, StepScore
from .critic import critique
from .prm import PrmClient, aggregate
from .scores import confidence_scores
from .steps import solution_steps

if TYPE_CHECKING:
    from ..config import Solve
    from ..engines.client import EngineClient


def measure_confidence(branch: Branch, window: int) -> None:
    """DeepConf's measures of the branch's trace, for any branch the engine gave log-probabilities."""
    branch.confidence_scores = confidence_scores(branch_trace(branch.steps), window)


class Scorer:
    """What weighs a branch: its confidence, a PRM's rewards or the critic's verdict."""

    def __init__(self, config: Solve, client: EngineClient) -> None:
        self.config = config
        self.client = client
        self.prm = (PrmClient(config.prm_endpoint, config.prm_model, config.prm_context,
                              timeout=config.request_timeout)
                    if config.score == "prm" else None)

    async def aclose(self) -> None:
        if self.prm is not None:
            await self.prm.aclose()

    async def score(self, branch: Branch, problem: str) -> None:
        """Set `branch.score` (and its steps' scores for prm and critic); answered branches only."""
        kind = self.config.score
        if kind == "confidence":
            branch.score = branch.confidence_scores.get(self.config.confidence_measure)
            if branch.score is None:
                branch.notes.append("not scored: the engine gave no log-probabilities")
        elif kind == "prm":
            await self._prm(branch, problem)
        elif kind == "critic":
            await self._critic(branch, problem)

    async def _prm(self, branch: Branch, problem: str) -> None:
        assert self.prm is not None
        parts = solution_steps(branch.steps)
        found = await self.prm.rewards(problem, [p.text for p in parts])
        scored = parts[found.skipped:]
        branch.step_scores = [StepScore(p.step, p.start, p.end, round(r, 4))
                              for p, r in zip(scored, found.rewards, strict=True)]
        score = aggregate(found.rewards, self.config.prm_aggregate)
        branch.score = None if score is None else round(score, 4)
        if found.skipped:
            branch.notes.append(
                f"PRM: cut from the front to fit its context of {self.config.prm_context} tokens: "
                f"the first {found.skipped} of {len(parts)} steps were not scored")

    async def _critic(self, branch: Branch, problem: str) -> None:
        parts = solution_steps(branch.steps)
        verdict = await critique(self.client, problem, [p.text for p in parts],
                                 self.config.critic_max_tokens, branch.seed)
        branch.score = None if verdict.score is None else round(verdict.score, 4)
        end = len(parts) if verdict.first_wrong is None else verdict.first_wrong + 1
        if verdict.score is not None:
            branch.step_scores = [StepScore(p.step, p.start, p.end, 0.0 if i == verdict.first_wrong else 1.0)
                                  for i, p in enumerate(parts[:end])]
        where = ("no wrong step" if verdict.first_wrong is None and verdict.score is not None
                 else f"first wrong step {verdict.first_wrong} of {len(parts)}" if verdict.score is not None
                 else "no readable verdict (not scored)")
        branch.notes.append(f"critic: {where} ({verdict.tokens} tokens)")
