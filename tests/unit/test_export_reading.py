"""Export round trip of a saved solve that holds display, inline and boxed math, markdown, code and
dollar amounts: the .ipynb keeps every formula with its delimiters and the money as text; the HTML
typesets the math as MathML (no network needed), keeps each formula as written, and its amounts."""

from __future__ import annotations

import re

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from jupyter_qwq.views import mime_bundle
from jupyter_qwq.views.export import export_file
from jupyter_qwq.views.export.mathml import mathml

from reading import HOSTILE, reading_session

FORMULAS = ["$$ 80{,}000 + 50{,}000 = 130{,}000 $$", "$x \\cdot 2$", "$x^2$", "$\\boxed{130000}$"]
MONEY = "<span>&#36;</span>80,000 and then puts in <span>&#36;</span>50,000"


def _saved(path, hostile=False):
    session = reading_session(hostile=hostile)
    nb = new_notebook(cells=[new_code_cell("%%solve\n" + session.problem, execution_count=1, outputs=[
        new_output("display_data", data=mime_bundle(session), metadata={})])])
    nbformat.write(nb, path)
    return path


def test_the_exported_notebook_keeps_every_formula_and_the_money(tmp_path):
    out = export_file(_saved(tmp_path / "house.ipynb"), to="ipynb", out=tmp_path / "out.ipynb")
    markdown = "\n".join(c.source for c in nbformat.read(out, as_version=4).cells if c.cell_type == "markdown")
    for formula in FORMULAS:
        assert formula in markdown, formula
    assert MONEY in markdown and "**First**" in markdown


def test_the_exported_html_typesets_math_offline_and_keeps_every_formula(tmp_path):
    html = export_file(_saved(tmp_path / "house.ipynb"), to="html", out=tmp_path / "out.html").read_text()
    alttexts = re.findall(r'<math [^>]*alttext="([^"]*)"', html)
    for formula in FORMULAS:
        assert formula.replace("<", "&lt;") in alttexts, (formula, alttexts)
    assert '<menclose notation="box"' in html
    # nbconvert writes the entity as a `$`, still in an element of its own that MathJax cannot pair
    assert re.search(r"<span>(\$|&#36;)</span>80,000 and then puts in <span>(\$|&#36;)</span>50,000", html)
    assert not [t for t in alttexts if "then" in t]  # no dollar amount read as math
    assert "<strong>First</strong>" in html
    assert re.search(r'class="highlight[^"]*".*print', html, re.DOTALL)  # code cells via Pygments


def test_tex_that_could_carry_markup_stays_tex():
    assert mathml("$\\text{<script>x</script>}$") is None
    assert mathml("$\\foo{x}$") is None
    linked = mathml("$\\href{javascript:alert(1)}{x}$")
    assert linked is not None and "javascript" not in linked.replace('alttext="$\\href{javascript', "")


def test_a_hostile_record_exports_no_markup(tmp_path):
    html = export_file(_saved(tmp_path / "bad.ipynb", hostile=True), to="html", out=tmp_path / "bad.html").read_text()
    assert "window.__qwq_pwned" in html  # shown, as text
    assert not re.search(r"<img[^>]*onerror|<script>window", html)
    assert HOSTILE not in html
