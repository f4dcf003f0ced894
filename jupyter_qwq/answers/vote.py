"""The vote: branches' answers grouped by equivalence and ranked (weights and stop rules:
decisions/; `decided`, the lossless rule, is re-exported here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ..decisions.stops import decided  # re-exported: answers.decided is public
from ..session import TallyItem, Vote
from .equivalence import equivalent
from .normalize import normalize

__all__ = ["decided", "vote"]


def vote(answers: Sequence[str | None] | Mapping[int, str | None]) -> Vote:
    """Group the branches' answers by equivalence and rank the groups.

    `answers` is indexed by branch: a sequence (index i is branch i) or {branch: answer}.
    None (and blank) answers are ignored. Each answer joins the first group, in order of
    creation, whose first member is equivalent to it. A group is shown by its most common
    normalised spelling (ties: the first seen).

    Tie rule: groups are ranked by count, then by their lowest branch index, so among groups
    with the same top count the one holding the lowest-numbered branch wins; `tie` is set.
    """
    items = sorted(answers.items()) if isinstance(answers, Mapping) else enumerate(answers)
    groups: list[list[tuple[int, str]]] = []  # members (branch, normalised), in branch order
    by_spelling: dict[str, list[tuple[int, str]]] = {}
    for branch, raw in items:
        if raw is None or not (spelling := normalize(raw)):
            continue
        group = by_spelling.get(spelling)
        if group is None:
            group = next((g for g in groups if equivalent(g[0][1], spelling)), None)
        if group is None:
            group = []
            groups.append(group)
        group.append((branch, spelling))
        by_spelling[spelling] = group

    tally = [
        TallyItem(answer=_display(g), count=len(g), branches=[b for b, _ in g]) for g in groups
    ]
    tally.sort(key=lambda t: (-t.count, min(t.branches)))
    answered = sum(t.count for t in tally)
    if not tally:
        return Vote()
    return Vote(
        answer=tally[0].answer,
        tally=tally,
        agreement=tally[0].count / answered,
        tie=len(tally) > 1 and tally[1].count == tally[0].count,
    )


def _display(group: list[tuple[int, str]]) -> str:
    counts = Counter(spelling for _, spelling in group)  # insertion order breaks ties
    return counts.most_common(1)[0][0]
