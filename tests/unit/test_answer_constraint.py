"""The answer constraint: which answers keep it, what the model is told, and bad settings."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from jupyter_qwq.answers.constraint import AnswerConstraint
from jupyter_qwq.config import Solve, make_config
from jupyter_qwq.exceptions import ConfigError
from jupyter_qwq.flags import build_parser, overrides_from_args
from jupyter_qwq.prompts import initial_messages, variant_for

AIMO = AnswerConstraint.from_settings("integer", "0:99999")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("42", ""),
        ("42.0", ""),
        ("1,000", ""),
        ("\\frac{84}{2}", ""),
        ("2^{10}", ""),
        ("x = 7", ""),
        ("7 \\text{ cm}", ""),
        ("0", ""),
        ("99999", ""),
        ("100000", "outside 0:99999"),
        ("-3", "outside 0:99999"),
        ("10^{400}", "outside 0:99999"),
        ("3.5", "not an integer"),
        ("\\frac{1}{3}", "not an integer"),
        ("\\sqrt{2}", "not an integer"),
        ("x+1", "not an integer"),
        ("(1, 2)", "not an integer"),
        ("\\text{yes}", "not an integer"),
        ("\\infty", "not an integer"),
    ],
)
def test_which_answers_keep_the_aimo_constraint(answer: str, why: str) -> None:
    assert AIMO.violation(answer) == why


def test_a_number_in_a_half_open_range() -> None:
    positive = AnswerConstraint.from_settings("number", "0:")
    assert positive.violation("\\sqrt{2}/2") == ""
    assert positive.violation("-0.5") == "outside 0:"
    assert positive.violation("x") == "not a number"
    assert positive.describe() == "The answer is a number of at least 0."


def test_no_constraint_by_default_admits_anything_and_says_nothing() -> None:
    constraint = Solve().answer_constraint()
    assert not constraint.active
    assert constraint.violation("\\text{a word}") == ""
    assert constraint.describe() == ""


def test_the_model_is_told_before_the_hint() -> None:
    variant = variant_for(1, rounds=0, mix="cot", hints=True)
    user = initial_messages("How many?", variant, AIMO.describe())[1]["content"]
    assert user == f"How many?\n\nThe answer is an integer from 0 to 99999.\n\n{variant.hint}"


def test_flags_set_the_constraint() -> None:
    args = build_parser().parse_args(["?", "--answer-type", "integer", "--answer-range", "0:99999"])
    config = make_config(**overrides_from_args(args))
    assert config.answer_constraint() == AIMO


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0-99999", "must be LO:HI, e.g. 0:99999"),
        ("a:b", "must be LO:HI"),
        ("10:1", "low end must not exceed its high end"),
    ],
)
def test_a_bad_range_says_how_to_write_one(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(answer_range=text)
    with pytest.raises(TraitError, match=message):  # %config Solve.answer_range = ...
        Solve().answer_range = text


def test_a_bad_type_lists_the_types() -> None:
    with pytest.raises(ConfigError, match="integer"):
        make_config(answer_type="prime")
