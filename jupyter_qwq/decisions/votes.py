"""The vote over groups of equivalent answers: majority, weighted by score, or the best branch.

Groups always come from answers.vote (math equivalence). Then:

- keep_top < 100 first drops the answered branches outside the top `keep_top`% by score
  (DeepConf's filter; at least one is kept, and with no scores at all nothing is dropped);
- majority: a group weighs its count; weighted: the sum of its branches' scores; best: its best
  branch's score, so the single best-scored branch's answer wins.

Ties go to the larger group, then to the group holding the lowest-numbered branch. A branch
with no score weighs 0, so a vote is never empty while any branch answered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..answers.vote import vote as group
from ..session import TallyItem, Vote


def tally(answers: Mapping[int, str | None], scores: Mapping[int, float | None] | None = None,
          method: str = "majority", keep_top: float = 100.0) -> Vote:
    """The vote of `answers` ({branch: answer}) weighed by `scores` ({branch: score})."""
    scores = scores or {}
    groups = group(answers).tally
    answered = [b for item in groups for b in item.branches]
    kept = _top(answered, scores, keep_top)
    items = []
    for item in groups:
        members = [b for b in item.branches if b in kept]
        if members:
            items.append(TallyItem(answer=item.answer, count=len(members), branches=members,
                                   weight=round(float(_weight(members, scores, method)), 4)))
    if not items:
        return Vote(method=method)
    items.sort(key=lambda t: (-(t.weight or 0.0), -t.count, min(t.branches)))
    total = sum(t.weight or 0.0 for t in items)
    counted = sum(t.count for t in items)
    leader = items[0]
    share = (leader.weight or 0.0) / total if method != "best" and total > 0 else leader.count / counted
    return Vote(
        answer=leader.answer,
        tally=items,
        agreement=leader.count / counted,
        tie=len(items) > 1 and (items[1].weight, items[1].count) == (leader.weight, leader.count),
        method=method,
        share=round(share, 4),
        dropped=sorted(set(answered) - kept),
    )


def _weight(members: list[int], scores: Mapping[int, float | None], method: str) -> float:
    if method == "majority":
        return float(len(members))
    values = [scores.get(b) or 0.0 for b in members]
    return max(values) if method == "best" else sum(values)


def _top(answered: list[int], scores: Mapping[int, float | None], keep_top: float) -> set[int]:
    if keep_top >= 100 or not any(scores.get(b) is not None for b in answered):
        return set(answered)
    count = max(1, math.ceil(len(answered) * keep_top / 100))
    ranked = sorted(answered, key=lambda b: (-(scores.get(b) if scores.get(b) is not None else -math.inf), b))
    return set(ranked[:count])
