"""The JupyterLab branch explorer: packaged in the wheel, shown by a real JupyterLab in chromium.

The notebook holds a display_data output with the full bundle of a real Session (solved against
the scripted server, with real subkernels, one of them drawing a matplotlib plot) and is opened
with no kernel at all: the explorer must work from the saved record alone, in an untrusted
notebook. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jupyter_qwq
from jupyter_qwq.session import MIME_TYPE
from jupyter_qwq.views import mime_bundle

from scripted_server import Reply, ScriptedServer, branch_and_round, last_output

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

PLOT = textwrap.dedent(
    """\
    import matplotlib.pyplot as plt
    xs = list(range(10))
    plt.plot(xs, [x * x for x in xs], marker="o")
    plt.title("x squared")
    plt.show()
    print(6 * 7)"""
)
HOSTILE = (
    "<img src=x onerror=\"window.__qwq_pwned=1\"><b>not bold</b>"
    "<script>window.__qwq_pwned=2</script>"
)


def test_package_json_version_matches_python_version():
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["name"] == "jupyter-qwq"
    assert package["version"] == jupyter_qwq.__version__
    assert package["jupyterlab"]["outputDir"] == "../jupyter_qwq/labextension"


@pytest.mark.browser
@pytest.mark.timeout(60)
def test_labextension_list_reports_it_enabled(tmp_path):
    from browser import isolated_env

    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env=isolated_env(tmp_path), capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    listing = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, listing
    line = next((ln for ln in listing.splitlines() if "jupyter-qwq" in ln), None)
    assert line is not None, f"jupyter-qwq is not installed; `pip install .` builds it:\n{listing}"
    assert f"jupyter-qwq v{jupyter_qwq.__version__} enabled OK" in line, line


def _script(body):
    """Branch 0 plots and prints 42; 1 prints 42; 2 (a cot prompt) says 41; 3's code fails."""
    branch, round_ = branch_and_round(body)
    if branch == 0:
        if round_ == 1:
            return Reply(f"Let me draw it first.\n```python\n{PLOT}\n```",
                     reasoning="A plot will show the shape; then print the product.", confidence=8.0)
        return Reply(f"The code printed {last_output(body).splitlines()[-1]}, so \\boxed{{42}}.",
                     confidence=12.0)
    if branch == 1:
        if round_ == 1:
            return Reply("Compute it directly.\n```python\nprint(6 * 7)\n```",
                         reasoning="Six times seven; check it with code anyway.")
        return Reply(f"It printed {last_output(body)}. \\boxed{{{last_output(body)}}}")
    if branch == 2:
        return Reply("Six sevens are 41, so \\boxed{41}.",
                     reasoning="Count: 7, 14, 21, 28, 35, 41.")
    if round_ == 1:
        return Reply("```python\nprint(42 / 0)\n```")
    return Reply("Division failed, but the answer is 42.")


@pytest.fixture(scope="module")
def session_bundle():
    with ScriptedServer(_script) as server:
        session = jupyter_qwq.solve(
            "What is 6 times 7? Plot x squared on the way.",
            engine="endpoint", endpoint=server.base_url, seed=0, branches=4, early_stop=False,
        )  # fmt: skip
    assert session.answer == "42"
    return mime_bundle(session)


def _notebook(path: Path, bundle: dict) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    hostile = json.loads(json.dumps(bundle[MIME_TYPE]))
    hostile["problem"] = HOSTILE
    hostile["vote"]["answer"] = HOSTILE
    hostile["vote"]["tally"][0]["answer"] = HOSTILE
    hostile["branches"][0]["steps"][0]["text"] = HOSTILE
    hostile["branches"][0]["steps"][0]["confidence"] = HOSTILE  # not base64: shows no trace
    nb = new_notebook(
        cells=[
            new_code_cell(
                "%solve What is 6 times 7?", execution_count=1,
                outputs=[new_output("display_data", data=bundle, metadata={})],
            ),
            new_code_cell(
                "hostile", execution_count=2,
                outputs=[new_output("display_data", data={MIME_TYPE: hostile, "text/plain": "x"})],
            ),
        ],  # fmt: skip
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(nb)
    nbformat.write(nb, path)


def _visible_branches(explorer):
    return [
        b.get_attribute("data-branch")
        for b in explorer.locator(".jp-QwqExplorer-branch").all()
        if b.is_visible()
    ]


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_branch_explorer_in_jupyterlab(tmp_path, session_bundle):
    from browser import chromium_page, jupyter_lab, open_lab, open_notebook_without_kernel

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "explorer.ipynb", session_bundle)
    record = session_bundle[MIME_TYPE]
    ARTIFACTS.mkdir(exist_ok=True)

    with jupyter_lab(notebooks, tmp_path / "jhome") as server, chromium_page() as page:
        open_lab(page, server)
        open_notebook_without_kernel(page, "explorer.ipynb")
        page.locator(".jp-QwqExplorer").first.wait_for(timeout=60_000)
        explorers = page.locator(".jp-QwqExplorer")
        assert explorers.count() == 2
        explorer = explorers.nth(0)

        # The explorer, not the static text/html fallback, drew the output.
        assert page.locator(".jp-OutputArea-output .qwq").count() == 0
        answer = explorer.locator(".jp-QwqExplorer-answer .jp-QwqExplorer-answerValue")
        assert answer.inner_text() == "42"
        header = explorer.locator(".jp-QwqExplorer-header").inner_text()
        for shown in ["endpoint", "scripted-model", "temperature", "0.7", "top_p", "0.95",
                      "min_p", "top_k", "seed", "branches"]:  # fmt: skip
            assert shown in header, shown

        # Every branch, each with its prompt variant and answer; branch 3's was not boxed.
        summaries = explorer.locator(".jp-QwqExplorer-branchSummary")
        assert summaries.count() == len(record["branches"]) == 4
        for i, branch in enumerate(record["branches"]):
            text = summaries.nth(i).inner_text()
            assert f"Branch {i}" in text and branch["prompt"] in text and branch["answer"] in text
        assert "fallback" in summaries.nth(3).inner_text()
        assert "fallback" not in summaries.nth(0).inner_text()

        # Branch 0's confidence (8 while it wrote code, 12 after): its mean and its trace.
        shown = summaries.nth(0).locator(".jp-QwqExplorer-confidence")
        mean = record["branches"][0]["confidence"]
        assert 8 < mean < 12 and shown.inner_text().startswith(f"confidence {mean:.1f} ")
        trace = shown.inner_text().split()[-1]
        assert set(trace) <= set("▁▂▃▄▅▆▇█") and trace[0] == "▁" and trace[-1] == "█"
        assert "log-probability" in shown.get_attribute("title")
        assert summaries.nth(1).locator(".jp-QwqExplorer-confidence").count() == 0  # none sent

        # Clicking an answer keeps only the branches that gave it; again, or "show all", clears.
        tally = {item["answer"]: item["branches"] for item in record["vote"]["tally"]}
        assert tally == {"42": [0, 1], "41": [2]}  # branch 3's unboxed answer is shown, not counted
        assert _visible_branches(explorer) == ["0", "1", "2", "3"]
        row_41 = explorer.locator('.jp-QwqExplorer-tallyRow[data-answer="41"]')
        row_42 = explorer.locator('.jp-QwqExplorer-tallyRow[data-answer="42"]')
        row_41.click()
        assert _visible_branches(explorer) == ["2"]
        assert row_41.get_attribute("aria-pressed") == "true"
        row_41.click()
        assert _visible_branches(explorer) == ["0", "1", "2", "3"]
        row_42.click()
        assert _visible_branches(explorer) == ["0", "1"]
        assert "Showing 2 of 4" in explorer.locator(".jp-QwqExplorer-filterBar").inner_text()
        explorer.get_by_role("button", name="Show all branches").click()
        assert _visible_branches(explorer) == ["0", "1", "2", "3"]
        row_42.click()

        # Branch 0: thinking collapsed by default, its code, and the real plot as an image.
        explorer.locator('.jp-QwqExplorer-branch[data-branch="0"] > summary').click()
        branch0 = explorer.locator('.jp-QwqExplorer-branch[data-branch="0"]')
        thinking = branch0.locator(".jp-QwqExplorer-thinking").first
        assert thinking.get_attribute("open") is None
        assert not thinking.locator(".jp-QwqExplorer-thinkingText").is_visible()
        assert "plt.title" in branch0.locator(".jp-QwqExplorer-code").inner_text()
        image = branch0.locator("img.jp-QwqExplorer-image")
        image.wait_for()
        assert image.get_attribute("src").startswith("data:image/png;base64,iVBOR")
        assert image.evaluate("img => img.complete && img.naturalWidth") > 100
        assert branch0.locator(".jp-QwqExplorer-stream").inner_text().strip() == "42"

        # Branch 3 (filtered out: its answer did not vote): the kernel's traceback, no ANSI colours.
        explorer.get_by_role("button", name="Show all branches").click()
        explorer.locator('.jp-QwqExplorer-branch[data-branch="3"] > summary').click()
        error = explorer.locator('.jp-QwqExplorer-branch[data-branch="3"] pre.jp-QwqExplorer-error')
        assert "ZeroDivisionError" in error.inner_text()
        assert "\x1b" not in error.inner_text()

        # No kernel was started for the notebook.
        assert server.get("/api/kernels") == [] and server.get("/api/sessions") == []

        # The hostile record shows its markup as text; nothing in it ran or became an element.
        hostile = explorers.nth(1)
        assert hostile.locator(".jp-QwqExplorer-problem").inner_text() == HOSTILE
        assert hostile.locator("img, b, script").count() == 0
        hostile.locator('.jp-QwqExplorer-branch[data-branch="0"] > summary').click()
        assert HOSTILE in hostile.locator(".jp-QwqExplorer-text").first.inner_text()
        assert hostile.locator("img:not(.jp-QwqExplorer-image), b, script").count() == 0
        assert page.evaluate("() => window.__qwq_pwned") is None

        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=ARTIFACTS / "explorer.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")  # fmt: skip
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        page.wait_for_timeout(500)  # let the theme's CSS variables apply before the picture
        explorer.screenshot(path=ARTIFACTS / "explorer-dark.png")
        print("page errors:", page.errors)
        ours = [e for e in page.errors if "jupyter-qwq" in e[1]]
        assert ours == []


HOUSE = "Josh buys a house for $80,000 and then puts in $50,000 in repairs."
EGGS = "She lays \\[ 3 \\text{ eggs/day} \\times 16 \\] eggs; so $x^2$ is \\(x \\cdot x\\)."


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_exported_markdown_typesets_math_and_keeps_money_as_text(tmp_path):
    """The exported notebook's markdown, as JupyterLab renders it: MathJax typesets the math,
    and the dollar amounts read as money."""
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    from browser import chromium_page, jupyter_lab, open_lab, open_notebook_without_kernel
    from jupyter_qwq.views.export import safe_markdown

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = new_notebook(cells=[new_markdown_cell(safe_markdown(f"{HOUSE}\n\n{EGGS}"))])
    nbformat.write(nb, notebooks / "dollars.ipynb")
    with jupyter_lab(notebooks, tmp_path / "jhome") as server, chromium_page() as page:
        open_lab(page, server)
        open_notebook_without_kernel(page, "dollars.ipynb")
        rendered = page.locator(".jp-MarkdownOutput").first
        rendered.locator("mjx-container").first.wait_for(timeout=60_000)
        assert rendered.locator("mjx-container").count() == 3  # the display math, x^2, x·x
        assert rendered.locator("mjx-container[display='true']").count() == 1
        text = rendered.inner_text()
        assert "$80,000 and then puts in $50,000" in text
        math = " ".join(rendered.locator("mjx-container").all_inner_texts())
        assert "80,000" not in math and "50,000" not in math
        ARTIFACTS.mkdir(exist_ok=True)
        rendered.screenshot(path=ARTIFACTS / "dollars.png")
