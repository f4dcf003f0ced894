"""The live view of `%%solve` in a real JupyterLab, with a real kernel, as a user sees it.

JupyterLab runs on a free port with isolated dirs, chromium (Debian's) drives it through Playwright,
and the kernel really runs the cells against the scripted server, whose replies stream slowly so
the view can be watched while it changes. Screenshots go to tests/artifacts/ (the README's
pictures in examples/images/ are copied from there by hand).
"""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from jupyter_qwq.session import MIME_TYPE

from scripted_server import Reply, ScriptedServer, branch_and_round, last_output

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "artifacts"

PLOT = textwrap.dedent(
    """\
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3.2, 2))
    ax.bar(range(1, 8), [6 * k for k in range(1, 8)])
    ax.set_title("6 times k")
    plt.show()
    print(6 * 7)"""
)
CODES = {0: PLOT, 1: "print(6 * 7)", 3: "print(sum([6] * 7) - 1)"}  # branch 3 is off by one
LEADS = [
    "We need the product \\(6 \\times 7\\), not $80,000 and then $50,000. Let me check it with a "
    "small table before trusting memory; ",
    "Six sevens: I will compute this directly rather than recall it, since a check is cheap; ",
    "",
    "Think of 7 + 7 + 7 + 7 + 7 + 7 and add the sevens one by one, then confirm in Python; ",
]
FILLER = "each step is written out so the reasoning can be followed. "
BACKGROUND_PROBLEM = "What is 6 times 7? Take your time."
MORE = "Let me double-check this another way before I box it. "
DECISIONS_PROBLEM = "What is 6 times 7? Weigh the branches."
DECISIONS = {0: ("Six sevens.\n\nSo \\boxed{42}.", 8.0), 1: ("Seven sixes.\n\nSo \\boxed{42}.", 6.0),
             2: ("\\boxed{41}", 3.0), 3: ("hmm " * 3000, 1.0)}  # branch 3 goes on until stopped
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_ERRORS = ("Loading widget", "Error displaying widget", "model not found")


def _script(body):
    """About 10 s a branch: round 1 streams its reasoning and a code block, round 2 the answer.

    Branches are staggered (branch i streams a little slower than branch i - 1), so mid-run some
    cards show their code's output while others still stream. Branch 2 is a CoT prompt (no code).
    On the background test's problem the last reply goes on until it is stopped.
    """
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    endless = BACKGROUND_PROBLEM in user  # then the last reply never ends on its own
    branch, round_ = branch_and_round(body)
    if DECISIONS_PROBLEM in user:  # sure and unsure branches, each token's confidence as given
        text, confidence = DECISIONS[branch]
        return Reply(text, delay=0.05, confidence=confidence)
    delay = 0.05 + 0.012 * branch
    if branch == 2:
        steps = "7, 14, 21, 28, 35, 42. " * 6
        end = MORE * 1000 if endless else "So \\boxed{42}."
        return Reply(f"Count in sevens, six times: {steps}{FILLER * 2}{end}", delay=delay,
                     reasoning="Six sevens; count them out.")
    confidence = 9.0 if branch == 1 else None  # only branch 1's engine sends log-probabilities
    if round_ == 1:
        text = f"{LEADS[branch]}{FILLER * 2}\n```python\n{CODES[branch]}\n```"
        return Reply(text, delay=delay, reasoning="Write code, then read its output.",
                     confidence=confidence)
    printed = last_output(body).strip().splitlines()[-1]
    end = MORE * 1000 if endless else f"So the answer is \\boxed{{{printed}}}."
    return Reply(f"The code printed {printed}. {FILLER}{end}", delay=delay, confidence=confidence)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab, one chromium page and one scripted server for the module."""
    from browser import chromium_page, jupyter_lab

    home = tmp_path_factory.mktemp("live")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    with ScriptedServer(_script) as scripted, jupyter_lab(notebooks, home / "jhome") as server, \
            chromium_page(width=1200, height=900) as page:  # fmt: skip
        yield notebooks, server, page, scripted
        ours = [e for e in page.errors if "jupyter-qwq" in e[1] or "jupyter-widgets" in e[1]]
        assert ours == [], ours


def _write_notebook(path: Path, *sources: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(
        cells=[new_code_cell(s) for s in sources],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)


def _open(page, server, notebooks: Path, name: str, *sources: str):
    from browser import open_lab, open_notebook_with_kernel

    _write_notebook(notebooks / name, *sources)
    open_lab(page, server)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # room for the output
    open_notebook_with_kernel(page, name)
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")


def _run_with_shift_enter(page, cells, count: int) -> None:
    cells.nth(0).locator(".jp-InputPrompt").click()  # command mode, first cell selected
    for _ in range(count):
        page.keyboard.press("Shift+Enter")


class View:
    """The LiveView's DOM in a cell's output: header, vote, controls, message, cards."""

    def __init__(self, cell) -> None:
        box = cell.locator(".jp-OutputArea-output .widget-vbox").first
        self.box = box
        self.header = box.locator("> .widget-html .widget-html-content").nth(0)
        self.message = box.locator("> .widget-html .widget-html-content").nth(1)
        self.vote = box.locator("> .widget-htmlmath").nth(0)
        self.cards = box.locator("> .widget-htmlmath .widget-htmlmath-content").nth(1)

    def numbers(self) -> dict[str, int] | None:
        """The header's counts, or None while it still says "starting…"."""
        text = self.header.inner_text()
        found = re.search(r"(\d+) tokens .* (\d+)/(\d+) done, (\d+) running, (\d+) stopped", text)
        if not found:
            return None
        tokens, done, total, running, stopped = map(int, found.groups())
        return {"tokens": tokens, "done": done, "total": total, "running": running, "stopped": stopped}

    def card(self, index: int):
        return self.cards.locator(":scope > div > div").nth(index)

    def card_positions(self) -> list[tuple[int, int]]:
        """(top, left) of each card, read at once: the cards are redrawn a few times a second."""
        return [tuple(p) for p in self.cards.evaluate(
            "e => [...e.firstElementChild.children].map(c => [c.offsetTop, c.offsetLeft])")]


def _solve_in_background(lab, name: str, rest: str) -> tuple:
    """Run `%%solve --background` with 4 branches against the scripted server (`rest`: more
    flags, a newline and the problem); the solve's cell and its live view, once it shows."""
    notebooks, server, page, scripted = lab
    cells = _open(page, server, notebooks, name, "%load_ext jupyter_qwq",
                  f"%%solve --background --endpoint {scripted.base_url} --branches 4 --seed 0 {rest}")
    _run_with_shift_enter(page, cells, 2)
    view = View(cells.nth(1))
    view.header.wait_for(timeout=30_000)
    return cells.nth(1), view


def _wait(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_live_view_streams_then_the_explorer_shows_the_answer(lab):
    from browser import open_lab, open_notebook_with_kernel, open_notebook_without_kernel

    notebooks, server, page, scripted = lab
    started = time.monotonic()
    cells = _open(
        page, server, notebooks, "live.ipynb",
        "%load_ext jupyter_qwq",
        f"%%solve --endpoint {scripted.base_url} --branches 4 --rounds 1 --seed 0 --no-early-stop\n"
        "What is 6 times 7?",
    )  # fmt: skip
    _run_with_shift_enter(page, cells, 2)
    view = View(cells.nth(1))
    view.header.wait_for(timeout=30_000)

    # Running: branches counted as running, and the token count grows between two reads.
    first = _wait(lambda: (n := view.numbers()) and n["running"] > 0 and n["tokens"] > 0 and n,
                  30, "running branches with tokens")  # fmt: skip
    assert first["total"] == 4 and first["done"] == 0
    assert "running" in view.header.inner_text()
    time.sleep(1.0)
    second = view.numbers()
    assert second["tokens"] > first["tokens"], (first, second)

    # Streamed text appears in every card before any code has run.
    _wait(lambda: all(FILLER.split()[0] in view.card(i).inner_text() for i in range(4)),
          20, "streamed text in the four cards")  # fmt: skip
    assert "Branch 0" in view.card(0).inner_text() and "tir" in view.card(0).inner_text()
    # Its math typeset by the front end's MathJax; its dollar amounts left as text.
    _wait(lambda: view.card(0).locator("mjx-container").count() > 0, 20, "typeset math in card 0")
    assert "not $80,000 and then $50,000" in view.card(0).inner_text()
    assert not [m for m in view.card(0).locator("mjx-container").all_inner_texts() if "then" in m]

    # Then a code block with the subkernel's real output (and branch 0's real plot).
    _wait(lambda: "code block 1 · ok" in view.card(1).inner_text(), 30, "branch 1's code output")
    card1 = view.card(1).inner_text()
    assert "confidence 9.0" in card1 and "confidence" not in view.card(0).inner_text()
    assert "print(6 * 7)" in card1
    assert view.card(1).locator("pre").last.inner_text().strip() == "42"
    _wait(lambda: view.card(0).locator("img").count() > 0, 20, "branch 0's plot")
    assert view.card(0).locator("img").get_attribute("src").startswith("data:image/png;base64,")
    assert view.numbers()["done"] < 4, "the run ended before the screenshot"

    # Done: the live view gives way to the record, drawn by the explorer, with the answer.
    explorer = cells.nth(1).locator(".jp-QwqExplorer")
    explorer.wait_for(timeout=40_000)
    assert explorer.locator(".jp-QwqExplorer-answer .jp-QwqExplorer-answerValue").inner_text() == "42"
    rows = explorer.locator(".jp-QwqExplorer-tallyRow")
    assert [rows.nth(i).get_attribute("data-answer") for i in range(rows.count())] == ["42", "41"]
    assert view.box.count() == 0 and cells.nth(1).locator(".jp-OutputArea-output").count() == 1
    assert cells.nth(1).locator(".jp-InputPrompt").inner_text().strip() == "[2]:"
    branch0 = explorer.locator('.jp-QwqExplorer-branch[data-branch="0"]')
    branch0.locator("> summary").click()
    branch0.locator("img.jp-QwqExplorer-image").wait_for()  # the plot made in the subkernel
    branch0.locator("> summary").click()
    # The picture: the tally and one branch opened, small enough for the notebook's viewport.
    explorer.locator('.jp-QwqExplorer-branch[data-branch="1"] > summary').click()
    branch1 = explorer.locator('.jp-QwqExplorer-branch[data-branch="1"]')
    _wait(lambda: "print(6 * 7)" in branch1.inner_text(), 10, "branch 1's code, opened")  # drawn on toggle
    page.mouse.move(0, 0)  # no hover highlight in the picture
    explorer.scroll_into_view_if_needed()
    assert explorer.bounding_box()["height"] < 760, explorer.bounding_box()
    IMAGES.mkdir(parents=True, exist_ok=True)
    explorer.screenshot(path=IMAGES / "explorer.png")

    # Saved, then reopened with a new kernel and with none: the explorer, no widget to look for.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    _wait(lambda: MIME_TYPE in (notebooks / "live.ipynb").read_text(), 10, "the notebook saved")
    assert WIDGET_VIEW not in (notebooks / "live.ipynb").read_text()
    for reopen in (open_notebook_with_kernel, open_notebook_without_kernel):
        open_lab(page, server)
        reopen(page, "live.ipynb")
        cell = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(1)
        cell.locator(".jp-QwqExplorer").wait_for(timeout=30_000)
        time.sleep(1.0)  # a widget's error would show by now
        for error in WIDGET_ERRORS:
            assert error not in page.locator(".jp-NotebookPanel:visible").inner_text(), (reopen, error)
    print(f"live view test: {time.monotonic() - started:.1f} s")


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_background_solve_frees_the_kernel_and_the_stop_button_stops_it(lab):
    from browser import kernel_status

    _notebooks, _server, page, scripted = lab
    started = time.monotonic()
    cell, view = _solve_in_background(lab, "background.ipynb", f"--rounds 1 --no-early-stop\n{BACKGROUND_PROBLEM}")

    # The cell returned at once: its prompt has its number, the kernel is idle, the view moves on.
    _wait(lambda: cell.locator(".jp-InputPrompt").inner_text().strip() == "[2]:", 30, "the cell to end")
    assert "background solve" in cell.locator(".jp-OutputArea-output").last.inner_text()
    _wait(lambda: kernel_status(page) == "idle", 10, "an idle kernel")
    first = _wait(lambda: (n := view.numbers()) and n["tokens"] > 0 and n, 30, "tokens")
    time.sleep(1.0)
    second = view.numbers()
    assert second["tokens"] > first["tokens"] and second["running"] == 4, (first, second)
    assert kernel_status(page) == "idle"

    # The kernel is free, so the layout control works while the solve runs: side by side.
    view.box.get_by_role("button", name="side by side").click()
    _wait(lambda: len({top for top, _ in view.card_positions()}) < 4, 5, "cards side by side")
    assert "repeat(auto-fill" in view.cards.inner_html()

    # Code blocks with their real outputs (branch 0's plot) while the replies go on streaming.
    for index in (0, 1, 3):
        _wait(lambda: "code block 1 · ok" in view.card(index).inner_text(), 30, f"branch {index}'s code")
    assert view.card(1).locator("pre").last.inner_text().strip() == "42"
    assert view.card(3).locator("pre").last.inner_text().strip() == "41"
    _wait(lambda: view.card(0).locator("img").count() > 0, 10, "branch 0's plot")
    _wait(lambda: all("The code printed" in view.card(i).inner_text() for i in (0, 1, 3)),
          20, "the second rounds to stream")  # fmt: skip
    assert "code block" not in view.card(2).inner_text() and "7, 14, 21" in view.card(2).inner_text()
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    view.box.evaluate("e => e.scrollIntoView({block: 'start'})")
    view.box.screenshot(path=IMAGES / "live-view.png")

    # Stop, clicked in the page, stops the solve through the widget's comm; the live view then
    # gives way to the stopped solve's record, drawn by the explorer.
    stop = view.box.get_by_role("button", name="Stop")
    assert stop.is_enabled()
    clicked = time.monotonic()
    stop.click()
    explorer = cell.locator(".jp-QwqExplorer")
    explorer.wait_for(timeout=10_000)
    stopped_in = time.monotonic() - clicked
    assert stopped_in < 5, stopped_in
    assert explorer.locator(".jp-QwqExplorer-status").first.inner_text().lower() == "cancelled"
    assert view.box.count() == 0
    _wait(lambda: scripted.open_streams() == 0, 10, "the server's streams to close")
    print(f"background test: {time.monotonic() - started:.1f} s, stopped {stopped_in:.2f} s after the click")


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_live_view_shows_scores_weights_and_why_a_branch_stopped(lab):
    """--score confidence --vote weighted, in the background: while branch 3 still writes, the
    cards show each branch's score and the vote each answer's weight; stopped, the explorer says
    why branch 3 ended."""
    _notebooks, _server, page, scripted = lab
    cell, view = _solve_in_background(
        lab, "decisions.ipynb", f"--rounds 0 --score confidence --vote weighted --stop none\n{DECISIONS_PROBLEM}")
    _wait(lambda: (n := view.numbers()) and n["done"] == 3 and n["running"] == 1, 30, "three branches done")
    for index, score in ((0, "8.00"), (1, "6.00"), (2, "3.00")):
        assert f"lowest group confidence {score}" in view.card(index).inner_text()
    assert "lowest group confidence" not in view.card(3).inner_text()  # still writing: no score yet
    _wait(lambda: "weight 14.00" in view.vote.inner_text(), 5, "the weighted tally")
    vote = view.vote.inner_text()
    assert "weight 3.00" in vote
    assert "weighted vote: an answer weighs the sum of its branches' scores (lowest group confidence)" in vote
    page.mouse.move(0, 0)
    view.box.evaluate("e => e.scrollIntoView({block: 'start'})")
    IMAGES.mkdir(parents=True, exist_ok=True)
    view.box.screenshot(path=IMAGES / "live-view-decisions.png")

    view.box.get_by_role("button", name="Stop").click()
    explorer = cell.locator(".jp-QwqExplorer")
    explorer.wait_for(timeout=10_000)
    summary = explorer.locator('.jp-QwqExplorer-branch[data-branch="3"] > summary').inner_text()
    assert "cancelled" in summary and "lowest group confidence" not in summary
    assert explorer.locator(".jp-QwqExplorer-weight").all_inner_texts() == ["weight 14.00", "weight 3.00"]
    assert "cancelled before every branch ended" in explorer.locator(".jp-QwqExplorer-notes").inner_text()
    _wait(lambda: scripted.open_streams() == 0, 10, "the server's streams to close")
