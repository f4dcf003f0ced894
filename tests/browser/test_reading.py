"""What a person reads, in a real JupyterLab in chromium: a saved notebook whose branches hold
display and inline math, a bare \\boxed{}, markdown, a python block and dollar amounts, opened with
no kernel. The explorer typesets the math with JupyterLab's MathJax, keeps money as text,
highlights code with CodeMirror, and runs nothing from a hostile record; the static HTML fallback
typesets too. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_qwq.views import mime_bundle

from reading import HOSTILE, reading_session

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NO_KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
             "language_info": {"name": "python"}}


def _notebook(path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    bundle = mime_bundle(reading_session())
    hostile = mime_bundle(reading_session(hostile=True))
    fallback = {"text/html": bundle["text/html"], "text/plain": bundle["text/plain"]}
    nb = new_notebook(cells=[
        new_code_cell("%%solve\n" + reading_session().problem, execution_count=1,
                      outputs=[new_output("display_data", data=bundle, metadata={})]),
        new_code_cell("hostile", execution_count=2,
                      outputs=[new_output("display_data", data=hostile, metadata={})]),
        new_code_cell("fallback", execution_count=3,
                      outputs=[new_output("display_data", data=fallback, metadata={})]),
    ], metadata=NO_KERNEL)  # fmt: skip
    nbformat.validate(nb)
    nbformat.write(nb, path)


def _math_texts(node) -> list[str]:
    return node.locator("mjx-container").all_inner_texts()


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_the_explorer_typesets_math_keeps_money_and_highlights_code(tmp_path):
    from browser import saved_notebook_open

    ARTIFACTS.mkdir(exist_ok=True)
    with saved_notebook_open(tmp_path, "reading.ipynb", _notebook) as (server, page):
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        explorers = page.locator(".jp-QwqExplorer")
        explorers.first.wait_for(timeout=60_000)
        explorer = explorers.nth(0)

        # The problem: its dollar amounts are text, not math.
        problem = explorer.locator(".jp-QwqExplorer-problem")
        assert "$80,000 and then puts in $50,000" in problem.inner_text()
        assert problem.locator("mjx-container").count() == 0

        # A branch opened: display math, inline math, $x^2$ and the boxed answer typeset.
        branch = explorer.locator('.jp-QwqExplorer-branch[data-branch="0"]')
        branch.locator("> summary").click()
        text = branch.locator(".jp-QwqExplorer-text").first
        text.locator("mjx-container").first.wait_for(timeout=60_000)
        page.wait_for_function("n => n.querySelectorAll('mjx-container').length >= 3", arg=text.element_handle(),
                               timeout=30_000)  # fmt: skip
        assert text.locator("mjx-container[display='true']").count() == 1
        assert text.locator("mjx-container").count() == 3  # \[..\], \(..\), $x^2$
        assert text.locator("strong").inner_text() == "First"
        assert "He paid $80,000 and then $50,000." in text.inner_text()
        assert not [m for m in _math_texts(branch) if "then" in m]  # no amount paired as math
        final = branch.locator(".jp-QwqExplorer-text").last
        final.locator("mjx-container").first.wait_for(timeout=30_000)
        assert final.locator("mjx-container").count() == 1  # the bare \boxed{130000}
        assert "\\boxed" not in final.inner_text()

        # Code: the model's fenced block and the code step, highlighted by CodeMirror's languages.
        code = branch.locator(".jp-QwqExplorer-code")
        assert "print(total)" in code.inner_text()
        highlighted = code.locator("pre code span[class]")
        assert highlighted.count() >= 3, code.inner_html()

        # The exact prompt and sampling: folded by default, there when opened; the legend.
        prompt = branch.locator(".jp-QwqExplorer-promptDetails")
        assert prompt.get_attribute("open") is None
        prompt.locator("summary").click()
        assert "put your final answer within \\boxed{}" in prompt.inner_text()
        assert "temperature" in prompt.inner_text() and "seed" in prompt.inner_text()
        assert "tool-integrated" in explorer.locator(".jp-QwqExplorer-prompt").first.get_attribute("title")
        assert "hint number 1" in explorer.locator(".jp-QwqExplorer-prompt").nth(1).get_attribute("title")

        # The copy-answer button puts the answer on the clipboard.
        explorer.locator(".jp-QwqExplorer-copy").click()
        page.wait_for_function("() => document.querySelector('.jp-QwqExplorer-copy').textContent === 'Copied'")
        assert page.evaluate("() => navigator.clipboard.readText()") == "130000"

        page.mouse.move(0, 0)
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=ARTIFACTS / "explorer-reading.png")

        # The hostile record: its markup shows as text, nothing ran or became an element.
        hostile = explorers.nth(1)
        assert HOSTILE in hostile.locator(".jp-QwqExplorer-problem").inner_text()
        hostile.locator('.jp-QwqExplorer-branch[data-branch="0"] > summary').click()
        hostile.locator(".jp-QwqExplorer-text").first.wait_for()
        page.wait_for_timeout(500)
        assert HOSTILE in hostile.locator(".jp-QwqExplorer-text").first.inner_text()
        assert hostile.locator("img:not(.jp-QwqExplorer-image), script").count() == 0
        assert page.evaluate("() => window.__qwq_pwned") is None

        # The static HTML fallback (no extension for the record): math typeset, money as text.
        static = page.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output")
        static.locator("details").first.evaluate("d => d.open = true")
        static.locator("mjx-container").first.wait_for(timeout=60_000)
        assert "$80,000 and then puts in $50,000" in static.inner_text()
        assert not [m for m in _math_texts(static) if "then" in m]
        assert static.locator("pre code span[style]").count() >= 3  # Pygments
        static.screenshot(path=ARTIFACTS / "static-html-reading.png")
        ours = [e for e in page.errors if "jupyter-qwq" in e[1]]
        assert ours == [], ours
        assert json.loads(json.dumps(server.get("/api/kernels"))) == []


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_exported_html_shows_typeset_math_with_no_network(tmp_path):
    """The HTML export opened offline: its math is drawn (MathML), its amounts read as money."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from browser import chromium_page
    from jupyter_qwq.views.export import export_file

    session = reading_session()
    nb = new_notebook(cells=[new_code_cell("%%solve\n" + session.problem, execution_count=1, outputs=[
        new_output("display_data", data=mime_bundle(session), metadata={})])], metadata=NO_KERNEL)
    nbformat.write(nb, tmp_path / "house.ipynb")
    html = export_file(tmp_path / "house.ipynb", to="html", out=tmp_path / "house.html")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(width=1000, height=1400) as page:
        requested = []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (requested.append(route.request.url), route.abort()))  # fmt: skip
        page.goto(html.as_uri())
        formulas = page.locator("math")
        assert formulas.count() >= 5  # the display, inline and boxed math, and the answers
        for i in range(formulas.count()):
            box = formulas.nth(i).bounding_box()
            assert box and box["width"] > 5 and box["height"] > 5, formulas.nth(i).get_attribute("alttext")
        display = page.locator("math[display='block']").first
        assert display.bounding_box()["width"] > 100
        body = page.locator("body").inner_text()
        assert "$80,000 and then puts in $50,000" in body
        page.screenshot(path=ARTIFACTS / "export-offline.png", full_page=True)


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_a_solve_cell_is_edited_as_text_not_python(tmp_path):
    """The body of a %%solve cell is words and math: no Python colours on `for`, `and`, `in`,
    also once the kernel has told the notebook its language; a Python cell keeps its colours."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from browser import chromium_page, jupyter_lab, open_lab, open_notebook_with_kernel

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = new_notebook(cells=[new_code_cell("%%solve --branches 2\n" + reading_session().problem),
                             new_code_cell("for x in range(3):\n    pass")], metadata=NO_KERNEL)
    nbformat.write(nb, notebooks / "cells.ipynb")
    with jupyter_lab(notebooks, tmp_path / "jhome") as server, chromium_page() as page:
        open_lab(page, server)
        open_notebook_with_kernel(page, "cells.ipynb")
        cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
        python_spans = cells.nth(1).locator(".cm-line span")
        python_spans.first.wait_for(timeout=30_000)
        page.wait_for_timeout(1000)  # the kernel's language info has reached the notebook
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.codeMimetype") \
            == "text/x-ipython"
        page.wait_for_function(
            "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content')"
            ".querySelectorAll('.cm-line span').length === 0", timeout=15_000)  # fmt: skip
        assert "for" in cells.nth(0).locator(".cm-content").inner_text()
        assert python_spans.count() >= 2
        assert page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.get(0).mimeType") == "text/plain"
        ARTIFACTS.mkdir(exist_ok=True)
        cells.nth(0).screenshot(path=ARTIFACTS / "solve-cell-plain.png")
        # Edited into a Python cell, it is coloured as Python again.
        cells.nth(0).locator(".cm-content").click()
        page.keyboard.press("Control+Home")
        page.keyboard.press("Delete")
        page.keyboard.press("Delete")
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.get(0).mimeType === 'text/x-ipython'",
            timeout=10_000)  # fmt: skip
