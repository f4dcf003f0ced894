"""Which text is math, which dollars are money: the cases of labextension/test/dollars.test.ts,
so the Python views and the JupyterLab explorer agree."""

from jupyter_qwq.views.dollars import pieces

HOUSE = "Josh buys a house for $80,000 and then puts in $50,000 in repairs."
EGGS = "She lays \\[ 3 \\text{ eggs/day} \\times 16 \\] eggs; so $x^2$ is \\(x \\cdot x\\)."


def math(text):
    return [piece for piece, kind in pieces(text) if kind == "math"]


def test_dollar_amounts_are_not_math():
    assert math(HOUSE) == []
    assert math("It costs $5 and $6.") == []
    assert math("from $ 3 to $ 4") == []


def test_display_inline_and_dollar_math_are_found_with_their_delimiters():
    assert math(EGGS) == ["\\[ 3 \\text{ eggs/day} \\times 16 \\]", "$x^2$", "\\(x \\cdot x\\)"]
    assert math("$$\\frac{1}{2}$$ and $a$, then $5.") == ["$$\\frac{1}{2}$$", "$a$"]
    assert math("\\[\na\n+ b\n\\]") == ["\\[\na\n+ b\n\\]"]


def test_a_bare_boxed_answer_becomes_inline_math_nested_braces_included():
    assert math("So \\boxed{\\frac{1}{2}} it is.") == ["\\(\\boxed{\\frac{1}{2}}\\)"]
    assert math("\\(\\boxed{3}\\)") == ["\\(\\boxed{3}\\)"]
    assert math("an unclosed \\boxed{3") == []


def test_code_holds_no_math():
    text = 'Use `$x$` here\n```python\nprint("$5 and $6", r"\\(a\\)")\n```\nthen $y$.'
    assert math(text) == ["$y$"]
    assert [p for p, kind in pieces(text) if kind == "code"] == [
        "`$x$`", '```python\nprint("$5 and $6", r"\\(a\\)")\n```']
    assert math("```\nan unclosed $x$ fence") == []
    assert "".join(p for p, _ in pieces(text)) == text
