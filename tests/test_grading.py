"""Grading: math-verify equivalences (table), its process-safe time limit, GSM8K numbers,
multiple-choice letters, and the toy world's exact numbers."""

from __future__ import annotations

import threading
import time

import pytest

from gsi.errors import ConfigError
from gsi.grading import MathVerifyGrader, extract_boxed, extract_choice, get_grader, options_of, parse_number
from gsi.types import Problem


def problem(answer: str, question: str = "q") -> Problem:
    return Problem(id="p", prompt=question, answer=answer, question=question)


@pytest.fixture(scope="module")
def math_verify():
    pytest.importorskip("math_verify")
    grader = MathVerifyGrader(timeout_s=5.0)
    yield grader
    grader.close()


# (reference, boxed answer, expected): every row is asserted.
EQUIVALENCES = [
    # fractions and their spellings
    ("\\frac{1}{2}", "\\dfrac{1}{2}", True),
    ("\\frac{1}{2}", "\\tfrac12", True),
    ("\\frac{14}{3}", "\\frac{28}{6}", True),
    ("\\frac{14}{3}", "4\\frac{2}{3}", True),  # a mixed number
    ("\\frac{14}{3}", "4\\frac{1}{3}", False),
    ("\\frac{3}{4}", "3/4", True),
    ("\\frac{3}{4}", "\\frac{4}{3}", False),
    # decimals vs fractions
    ("\\frac{1}{2}", "0.5", True),
    ("0.1", "\\frac{1}{10}", True),
    ("\\frac{1}{3}", "0.33", False),  # looks close, is not equal
    ("\\frac{2}{3}", "0.67", False),
    ("-3", "-3.0", True),
    ("5", "5.", True),  # a sentence-final period
    ("5", "-5", False),
    # percentages
    ("50\\%", "50", True),
    ("50\\%", "50\\%", True),
    ("12.5\\%", "12.5", True),
    ("50\\%", "5", False),
    # intervals and sets
    ("(1,2]", "(1, 2]", True),
    ("(1,2]", "[1,2]", False),
    ("(1,2]", "(1,2)", False),
    ("(-\\infty,-2] \\cup [3,\\infty)", "(-\\infty, -2]\\cup[3, \\infty)", True),
    ("(-\\infty, 3)", "(-\\infty, 3]", False),
    ("\\{1,2,3\\}", "\\{3,2,1\\}", True),
    ("1,2", "2,1", True),
    ("\\{1,2\\}", "\\{1,3\\}", False),
    # units, text and degrees
    ("10", "10\\text{ cm}", True),
    ("10\\text{ cm}", "10", True),
    ("10", "10\\text{ cm}^2", True),
    ("90^\\circ", "90", True),
    ("90", "90^{\\circ}", True),
    ("30^\\circ", "60^\\circ", False),
    ("\\$18.90", "18.90", True),
    ("\\$18.90", "\\$18.9", True),
    ("\\$18.90", "\\$19.80", False),
    ("\\text{(C)}", "C", True),
    ("\\text{Sunday}", "\\text{Sunday}", True),
    ("1000", "1,000", True),
    ("1000", "1{,}000", True),
    # equations and expressions
    ("3", "x = 3", True),
    ("x=3", "3", True),
    ("3", "x = 4", False),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
    ("\\sqrt{2}", "1.41", False),
    ("\\frac{\\pi}{2}", "\\pi/2", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("x^2+2x+1", "(x-1)^2", False),
    ("\\frac{\\pi}{6}", "30", False),
    # LaTeX spacing and delimiters
    ("\\frac{1}{2}", "\\frac{1}{\\!2}", True),
    ("12345", "12,\\!345", True),
    ("(1,2)", "\\left(1,2\\right)", True),
    ("(1,2)", "\\left( 1 , 2 \\right)", True),
    ("\\frac{1}{2}", "\\frac{1}{2}\\,", True),
    ("(1,2),(2,1)", "(2,1),(1,2)", True),
    ("(1,2)", "(2,1)", False),
]


@pytest.mark.parametrize(("reference", "answer", "expected"), EQUIVALENCES)
def test_math_verify_equivalence_table(math_verify, reference, answer, expected):
    grade = math_verify(f"So the answer is $\\boxed{{{answer}}}$.", problem(reference))
    assert grade.answer == answer
    assert grade.correct is expected


def test_equivalence_table_is_large_and_two_sided():
    assert len(EQUIVALENCES) >= 40
    assert sum(1 for *_, ok in EQUIVALENCES if not ok) >= 15


def test_math_verify_without_box_or_reference_is_incorrect(math_verify):
    assert math_verify("the answer is 3", problem("3")).correct is False
    assert math_verify("\\boxed{3}", problem("")).correct is False


def test_math_verify_from_a_non_main_thread(math_verify):
    results = {}

    def grade(key, answer):
        results[key] = math_verify(f"\\boxed{{{answer}}}", problem("\\frac{1}{2}")).correct

    threads = [threading.Thread(target=grade, args=(i, a)) for i, a in enumerate(["0.5", "\\dfrac12", "0.49"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {0: True, 1: True, 2: False}


def test_pathological_answer_times_out_within_the_limit_and_grading_goes_on():
    pytest.importorskip("math_verify")
    grader = MathVerifyGrader(timeout_s=1.0)
    try:
        assert grader("\\boxed{3}", problem("3")).correct  # warm: the helper is running
        result = {}

        def slow():
            start = time.monotonic()
            result["grade"] = grader("\\boxed{9^{9^{9^{9}}}}", problem("3"))
            result["took"] = time.monotonic() - start

        worker = threading.Thread(target=slow)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive()
        assert result["grade"].correct is False
        assert 1.0 <= result["took"] < 3.0
        assert grader.timeouts == 1
        assert grader("\\boxed{\\frac{6}{2}}", problem("3")).correct  # a fresh helper answers
    finally:
        grader.close()


# ------------------------------------------------------------------ GSM8K
@pytest.mark.parametrize(("text", "reference", "expected"), [
    ("so she sold \\boxed{72} clips", "72", True),
    ("\\boxed{1,890}", "1,890", True),
    ("\\boxed{1890}", "1,890", True),
    ("\\boxed{\\$18.90}", "18.90", True),
    ("\\boxed{18.9 \\text{ dollars}}", "18.90", True),
    ("\\boxed{72.00}", "72", True),
    ("\\boxed{-3}", "-3", True),
    ("\\boxed{3}", "-3", False),
    ("\\boxed{10\\%}", "10", True),
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("The answer is 1,000.", "1000", True),  # no box: the last number
    ("48 + 24 = 72 so 72 clips, check 73", "72", False),
    ("no number at all", "5", False),
    ("\\boxed{71}", "72", False),
])
def test_gsm8k_numbers(text, reference, expected):
    assert get_grader("gsm8k")(text, problem(reference)).correct is expected


def test_parse_number_reads_the_stated_number():
    assert parse_number("$1,234.50") * 2 == 2469
    assert parse_number("no digits") is None


# ------------------------------------------------------------------ multiple choice
QUESTION = "Which is prime?\nA. 21\nB. 29\nC. 27\nD. 33"


@pytest.mark.parametrize(("text", "letter"), [
    ("\\boxed{B}", "B"),
    ("\\boxed{(B)}", "B"),
    ("\\boxed{B.}", "B"),
    ("\\boxed{\\text{B}}", "B"),
    ("\\boxed{B. 29}", "B"),
    ("\\boxed{(B) 29}", "B"),
    ("\\boxed{29}", "B"),  # the option's text
    ("The answer is B", "B"),
    ("the answer is (B).", "B"),
    ("Answer: B", "B"),
    ("A looks tempting but the answer is (D)", "D"),
    ("\\boxed{E}", None),  # not an option
    ("I am not sure.", None),
])
def test_multiple_choice_letters(text, letter):
    assert extract_choice(text, options_of(QUESTION)) == letter


def test_multiple_choice_grades_against_reference_letter():
    grader = get_grader("multiple_choice")
    assert grader("\\boxed{29}", problem("B", QUESTION)) == grader("\\boxed{B}", problem("B", QUESTION))
    assert grader("\\boxed{29}", problem("B", QUESTION)).correct
    assert grader("\\boxed{21}", problem("B", QUESTION)).answer == "A"
    assert not grader("\\boxed{21}", problem("B", QUESTION)).correct


# ------------------------------------------------------------------ toy world and registry
def test_exact_number_grader_reads_the_last_box():
    grader = get_grader("exact_number")
    assert extract_boxed("x \\boxed{1} then \\boxed{{12}}") == "{12}"
    assert grader("\\boxed{012}", problem("12")).correct
    assert grader("\\boxed{012}", problem("12")).answer == "012"
    assert not grader("no box", problem("12")).correct


def test_unknown_grader_is_a_config_error():
    with pytest.raises(ConfigError, match=r"dataset.grader='exact' is not a grader; choose from"):
        get_grader("exact")


def test_grading_is_cheap(math_verify):
    start = time.perf_counter()
    for i in range(50):
        assert math_verify(f"\\boxed{{\\frac{{{2 * i}}}{{2}}}}", problem(str(i))).correct
    assert time.perf_counter() - start < 5.0
