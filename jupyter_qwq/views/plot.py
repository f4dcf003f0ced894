"""The PNG at the end of `jupyter-qwq eval`: accuracy against the tokens spent on a problem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def accuracy_curve(scores: Sequence[Any]) -> tuple[list[int], list[float], list[float]]:
    """For each token count T a problem used: the share of problems right within T tokens
    (their vote right, or any branch right for pass@k). A problem that needed more counts as
    unanswered, so the curve says what a per-problem token cap would have kept."""
    budgets = sorted({s.tokens for s in scores})
    count = max(len(scores), 1)
    accuracy = [sum(s.correct and s.tokens <= t for s in scores) / count for t in budgets]
    passing = [sum(s.any_correct and s.tokens <= t for s in scores) / count for t in budgets]
    return budgets, accuracy, passing


def save_accuracy_plot(scores: Sequence[Any], path: Path, title: str) -> Path:
    """Draw accuracy (and pass@k) against tokens per problem into `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib import pyplot

    budgets, accuracy, passing = accuracy_curve(scores)
    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=120)
    try:
        axes.step([0, *budgets], [0.0, *passing], where="post", label="pass@k (any branch right)",
                  color="#9aa5b1", linestyle="--")
        axes.step([0, *budgets], [0.0, *accuracy], where="post", label="accuracy (the vote right)",
                  color="#1f6feb", linewidth=2)
        axes.set_xlabel("tokens a problem used (all its branches)")
        axes.set_ylabel("share of problems right within that many tokens")
        axes.set_ylim(0, 1)
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
    return path
