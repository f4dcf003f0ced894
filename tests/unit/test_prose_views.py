"""The model's text in the Python views (static HTML, live cards): rendered markdown, math left
as TeX for MathJax with every delimiter, money as text, code highlighted, markup escaped."""

from __future__ import annotations

import re

from jupyter_qwq.session import Session
from jupyter_qwq.views.dollars import DOLLAR
from jupyter_qwq.views.facts import summary, without_run_code
from jupyter_qwq.views.html import session_html
from jupyter_qwq.views.prose import prose_html
from jupyter_qwq.views.widgets import live_card_html

from reading import DISPLAY, INLINE, reading_session


def test_markdown_is_rendered_and_math_keeps_its_delimiters():
    shown = prose_html("**bold** and *it*\n\n\\[ a<b \\] then \\(c\\) and $d$ and \\boxed{\\frac{1}{2}}")
    assert "<strong>bold</strong>" in shown and "<em>it</em>" in shown
    assert "\\[ a&lt;b \\]" in shown and "\\(c\\)" in shown and "$d$" in shown
    assert "\\(\\boxed{\\frac{1}{2}}\\)" in shown


def test_money_is_text_that_mathjax_cannot_pair():
    shown = prose_html("a house for $80,000 and then puts in $50,000")
    assert shown.count(DOLLAR) == 2 and "$" not in shown.replace(DOLLAR, "")


def test_code_is_highlighted_and_its_dollars_left_alone():
    shown = prose_html('```python\nprint("$5")\n```')
    assert re.search(r'<span style="[^"]*color[^"]*">print</span>', shown)
    assert "&quot;$5&quot;" in shown and DOLLAR not in shown


def test_markup_from_the_model_stays_text_in_every_python_view():
    session = reading_session(hostile=True)
    views = [session_html(session), live_card_html(session.branches[0], session, thinking=True),
             prose_html("[x](javascript:alert(1)) ![t](http://example.org/t.png)")]
    for shown in views:
        assert "<script" not in shown and "<img src=x" not in shown and 'href="javascript' not in shown
        assert not re.search(r"<[^>]*\sonerror=", shown)
    assert "&lt;script&gt;" in views[0] and "&lt;img" in views[0]


def test_the_static_html_and_live_card_show_math_money_and_code():
    session = reading_session()
    for shown in (session_html(session), live_card_html(session.branches[0], session)):
        assert DISPLAY in shown and INLINE in shown and "\\(\\boxed{130000}\\)" in shown
        assert f"{DOLLAR}80,000 and then {DOLLAR}50,000" in shown
        assert re.search(r"<pre[^>]*><code>.*<span style=", shown, re.DOTALL)


def test_one_branch_is_said_once():
    session = reading_session()
    session.branches = session.branches[:1]
    assert "1 branch," in summary(session) and "1 branch ·" in session_html(session)


def test_old_records_without_prompt_text_still_load():
    data = reading_session().to_dict()
    for branch in data["branches"]:
        del branch["messages"]
    assert Session.from_dict(data).branches[0].messages == []
    assert reading_session().to_dict()["branches"][0]["messages"][1]["role"] == "user"


def test_prompt_names_and_the_fallback_mark_say_what_they_mean():
    session = reading_session()
    session.branches[1].answer_source = "fallback:last_number"
    static, card = session_html(session), live_card_html(session.branches[1], session)
    for shown in (static, live_card_html(session.branches[0], session)):
        assert "title='tir: tool-integrated reasoning" in shown
    for shown in (static, card):
        assert "cot: chain of thought" in shown and "hint number 1" in shown
        assert "no \\boxed{} answer" in shown and "does not vote" in shown


def test_code_that_ran_is_shown_once_below_the_text_that_wrote_it():
    session = reading_session()
    session.branches = session.branches[:1]
    for shown in (session_html(session), live_card_html(session.branches[0], session)):
        assert len(re.findall(r"80_000", shown)) == 1, shown
    text, code = session.branches[0].steps[:2]
    assert without_run_code(text.text, code).endswith("Check it:")
    assert without_run_code("```python\nother()\n```", code) == "```python\nother()\n```"
    assert without_run_code(text.text, None) == text.text
