"""Exporting solved notebooks: a real solve (nbclient + the scripted server), exported to ipynb,
HTML and markdown, and the exported notebook re-run top to bottom in a plain kernel."""

from __future__ import annotations

import copy
import json
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_qwq.exceptions import ConfigError
from jupyter_qwq.flags import FlagError
from jupyter_qwq.views.export import (
    RERUN_TAG,
    choose_branch,
    export_command,
    export_file,
    export_notebook,
    public_endpoint,
    safe_markdown,
)
from jupyter_qwq.session import MIME_TYPE, Branch, Session, Step, TallyItem, Vote

from scripted_server import Reply, ScriptedServer, branch_and_round

pytestmark = pytest.mark.timeout(120)

API_KEY = "sk-export-secret-4242"

# Branch 0 (the winner): code, an error, a plot, then the answer with math and some raw HTML.
WINNER = [
    "Let me compute.\n```python\nx = 6 * 7\nprint('x is', x)\n```",
    "Check a ratio.\n```python\nprint(x / 0)\n```",
    "Plot it.\n```python\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [x, x + 1, x + 2])\n"
    "plt.show()\nprint('plotted', x)\n```",
    "Since $x = 6 \\cdot 7$ and $a<b$, <script>alert('pwned')</script> the answer is "
    "$\\boxed{42}$.",
]


def script(body):
    branch, round_ = branch_and_round(body)
    if branch == 0:
        return Reply(WINNER[min(round_, 4) - 1], reasoning="I should multiply 6 by 7." if round_ == 4 else "")
    if branch == 1:  # a tir branch whose code never ends
        if round_ == 1:
            return Reply("Loop.\n```python\nprint('start', flush=True)\nwhile True:\n    pass\n```")
        return Reply("It timed out; still \\boxed{42}.")
    return Reply("Off by one: \\boxed{41}.")  # branch 2: CoT


def _execute(nb, path: Path, **kwargs) -> None:
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path)}},
                   **kwargs).execute()


@pytest.fixture(scope="module")
def solved(tmp_path_factory) -> Path:
    """A notebook solved for real and saved, as a user would have it."""
    folder = tmp_path_factory.mktemp("solved")
    with ScriptedServer(script, api_key=API_KEY) as server:
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_markdown_cell("# My problems"),
            nbformat.v4.new_code_cell("%load_ext jupyter_qwq"),
            nbformat.v4.new_code_cell("base = 40\nprint('base', base)"),
            nbformat.v4.new_code_cell(
                f"%%solve --endpoint {server.base_url} --api-key {API_KEY} --branches 3 --seed 0 "
                "--rounds 3 --code-timeout 10 --no-early-stop --out res\nWhat is $6 \\times 7$?"),
            nbformat.v4.new_code_cell("print('answer', res.answer)"),
            nbformat.v4.new_code_cell("print('after', base + 2)"),
        ]
        _execute(nb, folder, store_widget_state=True)
    path = folder / "problems.ipynb"
    nbformat.write(nb, path)
    return path


def _session(path: Path) -> Session:
    nb = nbformat.read(path, as_version=4)
    data = next(o["data"][MIME_TYPE] for o in nb.cells[3].outputs if MIME_TYPE in o.get("data", {}))
    return Session.from_dict(data)


def _stdout(outputs) -> str:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream" and o["name"] == "stdout")


def test_the_solve_went_as_scripted(solved):
    session = _session(solved)
    assert session.answer == "42"
    executions = [[s.execution for s in b.steps if s.kind == "code"] for b in session.branches]
    assert executions == [["ok", "error", "ok"], ["timeout"], []], [
        [(s.execution, round(s.duration, 1)) for s in b.steps if s.kind == "code"] for b in session.branches]
    assert any("image/png" in o.get("data", {}) for o in session.branches[0].steps[5].outputs)


def test_ipynb_export_structure_and_safety(solved):
    out = export_file(solved, to="ipynb")
    assert out == solved.with_name("problems.solved.ipynb")
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    session = _session(solved)
    winner = session.branches[0]
    assert nb.metadata["jupyter_qwq"]["exported_from"] == "problems.ipynb"
    assert nb.metadata["jupyter_qwq"]["branch"] == "winner"
    assert nb.metadata["kernelspec"]["name"] == "python3" and "widgets" not in nb.metadata
    # Non-solve cells kept (the jupyter_qwq-only cell dropped), no widget views anywhere.
    assert nb.cells[0].source == "# My problems"
    assert nb.cells[1].source == "base = 40\nprint('base', base)"
    assert nb.cells[-1].source == "print('after', base + 2)" and "tags" not in nb.cells[-1].metadata
    # It needs the Session, which a plain kernel does not have: kept, tagged, its output kept.
    assert nb.cells[-2].metadata["tags"] == [RERUN_TAG] and _stdout(nb.cells[-2].outputs) == "answer 42\n"
    assert "%%solve" not in json.dumps(nb) and "load_ext" not in json.dumps(nb)
    assert "widget-view" not in json.dumps(nb) and MIME_TYPE not in json.dumps(nb)
    roles = [c.metadata.get("jupyter_qwq", {}).get("role") for c in nb.cells]
    assert roles[2:-2] == ["problem", "branch", "reasoning", "code", "reasoning", "code", "reasoning",
                           "code", "reasoning", "vote", "provenance"]
    problem = nb.cells[2].source
    assert problem.startswith("## Problem") and "What is $6 \\times 7$?" in problem
    # The code cells carry the recorded outputs; the one that raised is tagged for Run All.
    code = [c for c in nb.cells if c.metadata.get("jupyter_qwq", {}).get("role") == "code"]
    recorded = [s for s in winner.steps if s.kind == "code"]
    assert [c.source for c in code] == [s.code for s in recorded]
    assert _stdout(code[0].outputs) == "x is 42\n"
    assert code[1].outputs[-1]["output_type"] == "error" and code[1].outputs[-1]["ename"] == "ZeroDivisionError"
    assert code[1].metadata["tags"] == [RERUN_TAG] and "tags" not in code[0].metadata
    assert any("image/png" in o.get("data", {}) for o in code[2].outputs)
    assert all(c.execution_count is None for c in code)
    # The reasoning: the executed block is not repeated, math kept, HTML neutralised, thinking quoted.
    reasoning = [c.source for c in nb.cells if c.metadata.get("jupyter_qwq", {}).get("role") == "reasoning"]
    assert reasoning[0] == "Let me compute."
    last = reasoning[-1]
    assert "$x = 6 \\cdot 7$" in last and "$a< b$" in last and "$\\boxed{42}$" in last
    assert "<script>" not in last and "&lt;script>" in last
    assert last.startswith("> **Thinking**\n>\n> I should multiply 6 by 7.")
    # Vote, answer, provenance; no secret.
    vote = next(c.source for c in nb.cells if c.metadata.get("jupyter_qwq", {}).get("role") == "vote")
    assert "| answer | votes | branches |" in vote and "| $42$ | 2 | 0, 1 |" in vote and "| $41$ | 1 | 2 |" in vote
    assert "**Answer: $42$**" in vote
    provenance = next(c.source for c in nb.cells if c.metadata.get("jupyter_qwq", {}).get("role") == "provenance")
    for fact in ("endpoint", "scripted-model", "temperature 0.7", "base 0", "0: 0, 1: 1, 2: 2",
                 "max tokens 4096", "rounds 3", session.created, f"{session.elapsed:.1f} s", "jupyter_qwq 0."):
        assert fact in provenance, fact
    assert API_KEY not in out.read_text()


def test_the_export_reruns_in_a_plain_kernel_with_the_same_output(solved, tmp_path):
    out = export_file(solved, to="ipynb", out=tmp_path / "rerun.ipynb")
    nb = nbformat.read(out, as_version=4)
    recorded = copy.deepcopy(nb)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint('jupyter_qwq' in sys.modules)"))
    _execute(nb, tmp_path)  # allow_errors=False: only the tagged cell may raise
    code = [(before, after) for before, after in zip(recorded.cells, nb.cells)
            if after.metadata.get("jupyter_qwq", {}).get("role") == "code"]
    assert len(code) == 3
    for before, after in code:
        assert _stdout(after.outputs) == _stdout(before.outputs)
    assert code[1][1].outputs[-1]["ename"] == "ZeroDivisionError"
    assert any("image/png" in o.get("data", {}) for o in code[2][1].outputs)
    assert nb.cells[-3].outputs[-1]["ename"] == "NameError"  # res: tagged, Run All went on
    assert _stdout(nb.cells[-2].outputs) == "after 42\n"
    assert _stdout(nb.cells[-1].outputs).strip() == "False"


def test_html_and_markdown(solved, tmp_path):
    html = export_file(solved, to="html", out=tmp_path).read_text()
    assert re.search(r'Answer: <math [^>]*alttext="\$42\$"', html) and "data:image/png;base64," in html
    assert "x is 42" in html and "<script>alert" not in html and API_KEY not in html
    markdown_path = export_file(solved, to="markdown")
    assert markdown_path == solved.with_name("problems.solved.md")
    markdown = markdown_path.read_text()
    assert "| answer | votes | branches |" in markdown and "**Answer: $42$**" in markdown
    image = re.search(r"!\[png\]\(([^)]+\.png)\)", markdown)
    assert image and (markdown_path.parent / image.group(1)).stat().st_size > 1000


def test_all_branches(solved, tmp_path):
    out = export_command([str(solved), "--branch", "all", "-o", str(tmp_path / "all.ipynb")])
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["jupyter_qwq"]["branch"] == "all"
    headings = [c.source.splitlines()[0] for c in nb.cells
                if c.metadata.get("jupyter_qwq", {}).get("role") == "branch"]
    assert headings == ["### Branch 0", "### Branch 1", "### Branch 2"]
    skipped = [c for c in nb.cells if c.metadata.get("jupyter_qwq", {}).get("role") == "code-not-rerun"]
    assert len(skipped) == 1 and skipped[0].cell_type == "markdown"
    assert "timed out after 10 s" in skipped[0].source and "while True:" in skipped[0].source
    assert "start" in skipped[0].source  # what it printed before it was stopped
    assert "shown as the solution" in next(c.source for c in nb.cells if c.source.startswith("### Branch 0"))


# --- no kernel needed ---------------------------------------------------------------------------


def test_safe_markdown_keeps_math_and_code_and_drops_html():
    text = textwrap.dedent("""\
        If $a<b$ and \\(c<d\\) then <img src=x onerror=alert(1)> x < y.
        ![t](http://tracker/p.png)
        ```python
        print("<b>")
        ```
        $$\\frac{1}{2}<x$$ `a<b`""")
    safe = safe_markdown(text)
    assert "$a< b$" in safe and "$c< d$" in safe and "&lt;img" in safe and "x &lt; y" in safe
    assert '```python\nprint("<b>")\n```' in safe
    assert "$$\\frac{1}{2}< x$$" in safe and "`a< b`" in safe and "!\\[t]" in safe
    assert re.search(r"<[A-Za-z/!?]", safe.replace('print("<b>")', "")) is None


def _branch(index, answer, code=False, steps=1):
    kinds = ["code" if code else "text"] * steps
    return Branch(index=index, prompt="tir", answer=answer, steps=[Step(kind=k) for k in kinds])


def test_choose_branch():
    session = Session(problem="p", branches=[_branch(0, "1"), _branch(1, "2"), _branch(2, "2", code=True)],
                      vote=Vote(answer="2", tally=[TallyItem("2", 2, [1, 2]), TallyItem("1", 1, [0])]))
    assert choose_branch(session).index == 2  # in the winning group and ran code
    session.branches[2].steps = []
    assert choose_branch(session).index == 1  # no code in the group: its first branch
    session.vote = Vote()
    session.branches = [_branch(0, None, steps=1), _branch(1, None, steps=3), _branch(2, None, steps=3)]
    assert choose_branch(session).index == 1  # no answer: the most steps, lowest index


def test_public_endpoint_hides_credentials():
    assert public_endpoint("https://user:pw@api.example.com:8443/v1?key=abc#x") == "https://api.example.com:8443/v1"
    assert public_endpoint("") == ""


def test_errors_are_one_line_config_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    with pytest.raises(ConfigError, match="no such notebook"):
        export_file(tmp_path / "missing.ipynb")
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), plain)
    with pytest.raises(ConfigError, match="holds no %%solve results"):
        export_file(plain)
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        export_file(tmp_path / "bad.ipynb")
    with pytest.raises(ConfigError, match="--to must be one of"):
        export_file(plain, to="pdf")
    with pytest.raises(FlagError, match="invalid choice"):
        export_command([str(plain), "--branch", "best"])
    with pytest.raises(ConfigError, match="give the notebook"):
        export_command([], prog="%qwq export")
    unsolved = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%solve\nWhat is 1+1?")])
    exported = export_notebook(unsolved)
    nbformat.validate(exported)
    assert exported.cells[0].cell_type == "markdown" and "Not solved" in exported.cells[0].source


def test_the_command_line_and_the_magic_export(solved, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli.html"
    done = subprocess.run([sys.executable, "-m", "jupyter_qwq.cli", "export", str(solved), "--to", "html",
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == str(out), done.stderr
    assert "42" in out.read_text()
    missing = subprocess.run([sys.executable, "-m", "jupyter_qwq.cli", "export", str(tmp_path / "none.ipynb")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    nb = nbformat.v4.new_notebook()
    markdown = tmp_path / "magic.md"
    nb.cells = [nbformat.v4.new_code_cell(f"%load_ext jupyter_qwq\n%qwq export {solved} --to markdown -o {markdown}")]
    _execute(nb, tmp_path)
    assert f"exported to {markdown}" in _stdout(nb.cells[0].outputs)
    assert "| answer" in markdown.read_text().lower() or "42" in markdown.read_text()


# --- dollars: money stays money, display math keeps its backslashes -----------------------------

HOUSE = "Josh buys a house for $80,000 and then puts in $50,000 in repairs. What did he spend?"
EGGS = "She lays \\[ 3 \\text{ eggs/day} \\times 16 \\] eggs, and he spends $80,000 + $50,000 = \\boxed{130000}."
EGGS_MATH = "$$ 3 \\text{ eggs/day} \\times 16 $$"


class _TextRuns(HTMLParser):
    """Runs of text between tags: what MathJax scans for delimiters (it pairs none across tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[str] = [""]

    def handle_starttag(self, tag, attrs) -> None:
        self.runs.append("")

    def handle_endtag(self, tag) -> None:
        self.runs.append("")

    def handle_data(self, data) -> None:
        self.runs[-1] += data


def _text_runs(html: str) -> list[str]:
    parser = _TextRuns()
    parser.feed(html)
    return [run for run in parser.runs if run]


def assert_money_is_text(html: str) -> None:
    """Every amount shows its dollar sign, and no run of text pairs two dollar signs over one."""
    runs = _text_runs(html)
    assert "$80,000" in "".join(runs) and "$50,000" in "".join(runs)
    amounts = [run for run in runs if "80,000" in run or "50,000" in run]
    assert amounts and not [run for run in amounts if "$" in run.replace("$$", "")], amounts


def test_dollar_amounts_stay_money_and_display_math_survives_export(tmp_path):
    with ScriptedServer(lambda body: Reply(EGGS)) as server:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("%load_ext jupyter_qwq"),
                    nbformat.v4.new_code_cell(f"%%solve --endpoint {server.base_url} --branches 1 "
                                              f"--rounds 0\n{HOUSE}")]
        _execute(nb, tmp_path)
    path = tmp_path / "house.ipynb"
    nbformat.write(nb, path)
    static = next(o["data"]["text/html"] for o in nb.cells[1].outputs if MIME_TYPE in o.get("data", {}))
    assert_money_is_text(static)  # the record's static HTML, as nbviewer shows it
    assert "\\[ 3 \\text{ eggs/day} \\times 16 \\]" in static

    exported = nbformat.read(export_file(path, to="ipynb", out=tmp_path / "out.ipynb"), as_version=4)
    markdown = "\n".join(cell.source for cell in exported.cells if cell.cell_type == "markdown")
    assert EGGS_MATH in markdown  # markdown would drop the backslash of \[
    assert "$80,000" not in markdown and "$50,000" not in markdown  # a markdown math parser pairs them
    html = export_file(path, to="html", out=tmp_path / "out.html").read_text()
    assert_money_is_text(html)
    assert f'alttext="{EGGS_MATH}"' in html  # typeset as MathML, the TeX kept as written
