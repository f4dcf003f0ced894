"""The decisions of a solve, in a real JupyterLab in chromium: a saved notebook whose records
hold a weighted PRM vote with a --keep-top drop, step rewards and a branch cut by low
confidence, opened with no kernel. The explorer shows each answer's weight, the vote's notes,
each branch's score and why it stopped, and each step coloured by its reward with its figure.
Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from decided import CUT_NOTE, decided_session

from jupyter_qwq.views import mime_bundle
from jupyter_qwq.views.facts import reward_colour

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NO_KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
             "language_info": {"name": "python"}}


def _notebook(path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cells = [new_code_cell(f"%%solve --score {score} --vote weighted\nWhat is 6 x 7?", execution_count=n,
                           outputs=[new_output("display_data", data=mime_bundle(decided_session(score)),
                                               metadata={})])
             for n, score in enumerate(("prm", "confidence"), 1)]
    static = {key: value for key, value in mime_bundle(decided_session("prm")).items() if key.startswith("text/")}
    cells.append(new_code_cell("fallback", execution_count=3,  # no extension for the record
                               outputs=[new_output("display_data", data=static, metadata={})]))
    nb = new_notebook(cells=cells, metadata=NO_KERNEL)
    nbformat.validate(nb)
    nbformat.write(nb, path)


def _rgb(score: float) -> tuple[int, ...]:
    """The colour the views give a step of reward `score`."""
    hex_colour = reward_colour(score)
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _parse_rgb(css: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_the_explorer_shows_weights_reasons_scores_and_coloured_steps(tmp_path):
    from browser import saved_notebook_open

    ARTIFACTS.mkdir(exist_ok=True)
    with saved_notebook_open(tmp_path, "decided.ipynb", _notebook) as (_server, page):
        explorers = page.locator(".jp-QwqExplorer")
        explorers.nth(1).wait_for(timeout=60_000)
        prm, confidence = explorers.nth(0), explorers.nth(1)

        # The tally: each answer's weight beside its count, and the vote's notes.
        row = prm.locator(".jp-QwqExplorer-tallyRow").first
        assert row.locator(".jp-QwqExplorer-count").inner_text() == "2 votes"
        assert row.locator(".jp-QwqExplorer-weight").inner_text() == "weight 1.23"
        notes = prm.locator(".jp-QwqExplorer-notes").inner_text()
        assert "weighted vote: an answer weighs the sum of its branches' scores (PRM min)" in notes
        assert "branch 2 answered but did not vote: outside the top 75% by score (--keep-top)" in notes
        assert "ended early: the leading answer held 100% of the weight (--consensus 0.95)" in notes

        # Each branch: its score and, where its status does not say it, why it stopped.
        def summary(explorer, index: int) -> str:
            return explorer.locator(f'.jp-QwqExplorer-branch[data-branch="{index}"] > summary').inner_text()

        assert "PRM min 0.35" in summary(prm, 1)
        assert "did not vote: outside the top 75% by score (--keep-top)" in summary(prm, 2)
        assert "cut by low confidence at token 230" in summary(prm, 3)
        assert "stopped early: the vote was decided" in summary(prm, 4)
        assert "lowest group confidence 17.83" in summary(confidence, 0)
        assert "cut by low confidence at token 230 (its window fell below 12.50)" in summary(confidence, 3)
        cut = confidence.locator('.jp-QwqExplorer-branch[data-branch="3"]')
        cut.locator("> summary").click()
        assert cut.locator(".jp-QwqExplorer-note").inner_text() == CUT_NOTE
        weights = confidence.locator(".jp-QwqExplorer-weight").all_inner_texts()
        assert weights == ["weight 34.03", "weight 9.41"]

        # The steps of branch 1, each coloured by its PRM reward, its figure on a badge.
        branch = prm.locator('.jp-QwqExplorer-branch[data-branch="1"]')
        branch.locator("> summary").click()
        steps = branch.locator(".jp-QwqExplorer-reward")
        steps.nth(4).wait_for(timeout=30_000)
        badges = branch.locator(".jp-QwqExplorer-rewardBadge")
        assert badges.all_inner_texts() == ["0.90", "0.35", "0.80", "0.85", "0.62"]
        assert [steps.nth(i).get_attribute("data-step") for i in range(5)] == ["1", "2", "3", "4", "5"]
        assert badges.nth(1).get_attribute("title") == "step 2: PRM reward 0.35 (probability it is right)"
        badge = _parse_rgb(badges.nth(1).evaluate("n => getComputedStyle(n).borderLeftColor"))
        assert badge == _rgb(0.35), badge  # the badge carries the colour too, its figure in the text's ink
        low = _parse_rgb(steps.nth(1).evaluate("n => getComputedStyle(n).borderLeftColor"))
        high = _parse_rgb(steps.nth(0).evaluate("n => getComputedStyle(n).borderLeftColor"))
        assert low == _rgb(0.35), low  # 0.35: amber, towards red
        assert high == _rgb(0.90), high  # 0.90: green
        assert high[1] > high[0] and low[0] > high[0]
        # The scored paragraph keeps its math typeset; the code and its output carry their own steps.
        steps.nth(1).locator("mjx-container").first.wait_for(timeout=60_000)
        assert "print" in steps.nth(2).locator(".jp-QwqExplorer-code").inner_text()
        assert "42" in steps.nth(3).locator(".jp-QwqExplorer-outputs").inner_text()

        # The static HTML (saved beside the record, for viewers without the extension): the same
        # weights, reasons and coloured steps, through JupyterLab's sanitizer.
        static = page.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output")
        assert "weight 1.23" in static.locator("table").inner_text()
        static.locator("details").nth(1).evaluate("d => d.open = true")
        assert "PRM min 0.35" in static.locator("details").nth(1).locator("summary").inner_text()
        scored = static.locator("details").nth(1).locator(".reward")
        assert scored.count() == 5
        colour = _parse_rgb(scored.nth(1).evaluate("n => getComputedStyle(n).borderLeftColor"))
        assert colour == _rgb(0.35), colour
        assert scored.nth(1).locator(".reward-badge").inner_text() == "0.35"

        page.mouse.move(0, 0)
        prm.scroll_into_view_if_needed()
        prm.screenshot(path=ARTIFACTS / "explorer-decisions.png")
        ours = [e for e in page.errors if "jupyter-qwq" in e[1]]
        assert ours == [], ours
