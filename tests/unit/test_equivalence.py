"""Answer classes the vote used to split although Math-Verify alone joins them (issue 11).

Each class has equal spellings that must join one group and near misses that must not; the
figure on real graded answers is benchmarks/equivalence.py.
"""

from __future__ import annotations

import pytest

from jupyter_qwq.answers import equivalent, vote

CLASSES = {
    "list against tuple or set": [
        ("(1, 2)", "1, 2", True),
        ("3, 5", "\\left(3, 5\\right)", True),
        ("\\{1,2\\}", "1,2", True),
        ("(2,1)", "1, 2", False),  # a tuple is ordered
        ("(1, 2)", "1, 3", False),
        ("1, 2", "1, 2, 3", False),
    ],
    "equation with a left side": [
        ("16", "|r-s| = 16", True),
        ("0", "I(6,3) = 0", True),
        ("6", "2+2+2=6", True),
        ("7", "2+2+2=6", False),
        ("17", "|r-s| = 16", False),
        ("r-s", "|r-s| = 16", False),  # the value is the right side, not the left
    ],
    "percent against decimal": [
        ("0.5", "50\\%", True),
        ("12.5\\%", "0.125", True),
        ("50", "50\\%", True),
        ("0.25", "50\\%", False),
        ("5", "50\\%", False),
    ],
    "units": [
        ("166", "166 \\text{cm}^2", True),
        ("12", "12\\mbox{ inches}^2", True),
        ("5", "5\\text{ m/s}", True),
        ("16", "166 \\text{cm}^2", False),
        ("4:30 \\text{ p.m.}", "4:30 \\text{ a.m.}", False),
    ],
    "functions written two ways": [
        ("f(x)=x, f(x)=2-x", "f(x)=x \\text{ or } f(x)=2-x", True),
        ("f(x)=x, f(x)=2-x", "f(x)=2-x \\text{ or } f(x)=x", True),
        ("f(x)=x or f(x)=2-x", "f(x)=x, f(x)=2-x", True),
        ("x=1 \\text{ or } x=2", "1, 2", True),
        ("f(x)=x, f(x)=2-x", "f(x)=x", False),
        ("f(x)=x, f(x)=2-x", "f(x)=x \\text{ or } f(x)=2+x", False),
    ],
}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [case for cases in CLASSES.values() for case in cases],
    ids=[f"{name}: {a} vs {b}" for name, cases in CLASSES.items() for a, b, _ in cases],
)
def test_class(a: str, b: str, same: bool) -> None:
    assert equivalent(a, b) is same
    assert equivalent(b, a) is same


def test_the_vote_joins_a_list_written_three_ways() -> None:
    result = vote(["(1, 2)", "1, 2", "x=1 \\text{ or } x=2", "(2, 3)"])
    assert result.tally[0].count == 3
    assert result.tally[0].branches == [0, 1, 2]
