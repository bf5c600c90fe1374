"""Answer extraction on tricky outputs, metrics, and self-consistency voting (ties included)."""

from __future__ import annotations

import pytest

from flanlab.evaluation.filters import apply_filter, cut_at_stop, parse_number
from flanlab.evaluation.metrics import (
    exact_match,
    majority_vote,
    numeric_match,
    squad_em,
    squad_f1,
    squad_normalize,
)


@pytest.mark.parametrize(("output", "expected"), [
    ("First, x. So the answer is (B).", "B"),
    ("So the answer is (B). Wait, no: the answer is (C).", "C"),          # several: the last wins
    ("I am not sure.", None),                                              # no answer
    ("So the answer is } ] >.", "} ] >"),                                  # free-form (dyck)
    ("So the answer is 3.5.", "3.5"),                                      # a period inside the answer
    ("The Answer Is valid.\nQ: next", "valid"),                            # case, and stops at the line
])
def test_bbh_cot_answer_is(output, expected):
    assert apply_filter("answer_is", output) == expected


@pytest.mark.parametrize(("output", "expected"), [
    ("She makes 9 * 2 = $18 every day. The answer is $18.", "18"),
    ("The total is 1,234 dollars. The answer is 1,234.", "1234"),          # thousands commas
    ("It costs 12.50 dollars and 3 more, so 15.5 dollars", "15.5"),       # no 'answer is': last number
    ("The answer is 7 apples, not 8.", "7"),                               # the number after 'answer is'
    ("The answer is -3.", "-3"),
    ("no digits at all", None),
])
def test_gsm8k_number_extraction(output, expected):
    assert apply_filter("answer_is_number", output) == expected


def test_last_number_and_mc_letters():
    assert apply_filter("last_number", "ধাপে ধাপে উত্তর: 5 + 6 = 11। উত্তর হল 11।") == "11"
    assert apply_filter("mc_letter", " (B) Paris") == "B"
    assert apply_filter("mc_letter", " B. Paris") == "B"
    assert apply_filter("mc_letter", " none of these") is None
    assert apply_filter("mc_answer_is", "... The answer is (D).") == "D"
    assert apply_filter("first_line", " (A)\nQ: more") == "A"


def test_stop_sequences_cut_at_the_earliest():
    assert cut_at_stop("yes\n\nQ: next\nA: no", ["\nQ:", "\n\n"]) == "yes"
    assert cut_at_stop("no stop here", ["\n\n"]) == "no stop here"


def test_option_letter_forms_compare_equal():
    assert exact_match("A", "(A)") and exact_match("(A)", "(A)") and exact_match(" (B) ", "B")
    assert not exact_match("A", "(B)") and not exact_match(None, "(A)")
    assert not exact_match("(A) because", "(A)")


def test_numeric_compare():
    assert numeric_match("18", "18") and numeric_match("18.0", "18") and numeric_match("$1,500", "1500")
    assert not numeric_match("17", "18") and not numeric_match(None, "18")
    assert parse_number("about 3 cats and 4,000.00 dogs") == "4000"


def test_squad_normalization_and_f1():
    assert squad_normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert squad_em("the Paris.", ["Paris"]) == 1.0
    assert squad_em("Paris France", ["Paris"]) == 0.0
    assert squad_f1("Paris France", ["Paris"]) == pytest.approx(2 / 3)
    assert squad_f1("France", ["Paris", "the French Republic", "France"]) == 1.0
    assert squad_f1(None, ["x"]) == 0.0


def test_majority_vote_and_ties():
    assert majority_vote(["5", "7", "7", None, None, None]) == "7"     # no-answer never wins
    assert majority_vote(["5", "7", "7", "5"]) == "5"                  # tie: earliest first occurrence
    assert majority_vote(["7", "5", "5", "7"]) == "7"
    assert majority_vote([None, None]) is None
    assert majority_vote(["18.0", "$18", "17"], numeric=True) == "18.0"  # same number counted together
    assert majority_vote(["(A)", "B", "A"]) == "(A)"                   # "(A)" and "A" are one answer
