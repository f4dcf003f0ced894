"""Draw the README's pictures from a real model: the live view mid-solve and the branch explorer.

A real JupyterLab (isolated dirs, a free port) in Debian's chromium runs `%%solve` against a real
OpenAI-compatible server, e.g. vLLM's CPU build serving the embedded model:

    JUPYTER_QWQ_API_KEY=KEY python examples/make_pictures.py --endpoint http://127.0.0.1:8000/v1

The key goes to the kernel through the environment, never into the notebook or the picture.
It writes examples/images/live-view.png (while the branches stream) and explorer.png (the saved
result, opened again with no kernel), and the solved notebook beside them as solved.ipynb.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness of the test suite

from browser import (  # noqa: E402
    chromium_page, jupyter_lab, open_lab, open_notebook_with_kernel, open_notebook_without_kernel,
)

PROBLEM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
           "in May. How many clips did Natalia sell altogether in April and May?")


def write_notebook(path: Path, endpoint: str, branches: int, max_tokens: int, problem: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell("%load_ext jupyter_qwq"),
        new_code_cell(f"%%solve --endpoint {endpoint} --branches {branches} --max-tokens {max_tokens} "
                      f"--seed 1\n{problem}"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                 "language_info": {"name": "python"}})
    nbformat.write(nb, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--problem", default=PROBLEM)
    parser.add_argument("--live-after", type=float, default=120.0, help="seconds into the solve for the live picture")
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        home, notebooks = Path(scratch), Path(scratch) / "notebooks"
        notebooks.mkdir()
        write_notebook(notebooks / "solve.ipynb", args.endpoint, args.branches, args.max_tokens, args.problem)
        with jupyter_lab(notebooks, home / "jhome") as server, chromium_page(width=1200, height=1800) as page:
            open_lab(page, server)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
            open_notebook_with_kernel(page, "solve.ipynb")
            cells = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")
            cells.nth(0).locator(".jp-InputPrompt").click()
            page.keyboard.press("Shift+Enter")
            page.keyboard.press("Shift+Enter")
            view = cells.nth(1).locator(".jp-OutputArea-output .widget-vbox").first
            view.wait_for(timeout=120_000)
            time.sleep(args.live_after)
            view.screenshot(path=args.out / "live-view.png")
            explorer = cells.nth(1).locator(".jp-QwqExplorer").first
            explorer.wait_for(timeout=3_600_000)  # the live view gives way to it at the end
            page.keyboard.press("Control+s")
            page.wait_for_timeout(2000)
            page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
            page.wait_for_timeout(2000)
            shutil.copy(notebooks / "solve.ipynb", args.out / "solved.ipynb")
            open_lab(page, server)
            open_notebook_without_kernel(page, "solve.ipynb")
            explorer = page.locator(".jp-NotebookPanel:visible .jp-QwqExplorer").first
            explorer.wait_for(timeout=60_000)
            explorer.locator('.jp-QwqExplorer-branch[data-branch="0"] > summary').click()  # its reasoning
            page.wait_for_timeout(3000)  # MathJax typesets
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=args.out / "explorer.png")
    print(f"wrote {args.out / 'live-view.png'}, {args.out / 'explorer.png'} and {args.out / 'solved.ipynb'}")


if __name__ == "__main__":
    main()
