"""When to stop a solve, and when to cut one branch: pure rules on the vote so far.

- lossless: the branches still running cannot change the winner, whatever they answer and
  score: by counts for a majority; by weights for a weighted vote on a bounded score (prm and
  critic score in [0, 1]); a vote no bound can settle early (confidence weights, which have no
  upper bound, `best`, or a keep-top filter, which a later branch can reorder) waits for every
  branch;
- agree:K: some answer has K branches (AIMO-3's winner stops at 4 of 8);
- confidence: DeepConf online. The warm-up branches (the first `warmup` by index) run to their
  end and set a threshold at a percentile of their lowest-group confidence; every later branch
  is cut as soon as its current window falls below it; the solve ends once the leader's
  weighted share reaches `consensus`;
- none: every branch runs to its end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from ..session import Vote
from .policy import Policy
from .scores import percentile

BOUNDED_SCORES = {"prm": 1.0, "critic": 1.0}  # probabilities and shares of steps


def decided(vote: Vote, still_running: int, bound: float | None = None) -> bool:
    """True when the branches still running cannot change the winner (lossless early stop).

    The worst case is that every running branch joins the runner-up, or founds a new group.
    The leader is safe only if `leader > runner_up + still_running`, strictly: at equality the
    result would be a tie, settled by the lowest branch index, and a still-running branch may
    have a lower index than any finished one, so `>=` could stop on a winner that loses.
    With `bound` (the most one branch can weigh), the same holds for the groups' weights.
    With nothing running, any vote that has an answer is decided.
    """
    if vote.answer is None or not vote.tally:
        return False
    if still_running <= 0:
        return True
    if bound is None:
        leader = vote.tally[0].count
        runner_up = vote.tally[1].count if len(vote.tally) > 1 else 0
        return leader > runner_up + still_running
    leading = vote.tally[0].weight or 0.0
    second = (vote.tally[1].weight or 0.0) if len(vote.tally) > 1 else 0.0
    return leading > second + still_running * bound


def lossless_bound(policy: Policy) -> float | None | bool:
    """What one running branch can add to a group under `policy`: None to count branches, a
    number for bounded weights, False when no bound settles the vote before every branch ends."""
    if policy.score == "none":
        return None
    if policy.keep_top < 100:
        return False
    if policy.vote == "majority":
        return None
    if policy.vote == "weighted" and policy.score in BOUNDED_SCORES:
        return BOUNDED_SCORES[policy.score]
    return False


def should_stop(policy: Policy, vote: Vote, still_running: int, warmed_up: bool) -> bool:
    """Whether to stop the branches still running, after the vote `vote` of those that ended."""
    if still_running <= 0 or vote.answer is None:
        return False
    kind, k = policy.stop_rule
    if kind == "lossless":
        bound = lossless_bound(policy)
        return bound is not False and decided(vote, still_running, bound)
    if kind == "agree":
        return any(item.count >= k for item in vote.tally)
    if kind == "confidence":
        return warmed_up and vote.share >= policy.consensus
    return False


def threshold(warmup_scores: Iterable[float | None], pct: float) -> float | None:
    """The cut threshold: the `pct`th percentile of the warm-up branches' lowest-group scores."""
    found = [s for s in warmup_scores if s is not None]
    return percentile(found, pct) if found else None


class Window:
    """The mean of a branch's last `size` token confidences, kept as they stream."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._values: deque[float] = deque()
        self._total = 0.0

    def add(self, values: Sequence[float]) -> float | None:
        """Add tokens; the current window's mean once it is full, else None."""
        for value in values:
            self._values.append(value)
            self._total += value
            if len(self._values) > self.size:
                self._total -= self._values.popleft()
        return self._total / self.size if len(self._values) == self.size else None


def first_cut(values: Sequence[float], size: int, limit: float, after: int = 0) -> int | None:
    """How many tokens a branch writes before a full window's mean falls below `limit`, checked
    from token `after` on (the threshold is known only from then)."""
    window = Window(size)
    for position, value in enumerate(values, 1):
        current = window.add((value,))
        if position > after and current is not None and current < limit:
            return position
    return None
