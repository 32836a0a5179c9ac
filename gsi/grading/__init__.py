"""Answer extraction and grading, one data set's rules per grader.

A grader takes a finished solution's text and its problem and returns a :class:`Grade`:
the answer it read (recorded in ``results.jsonl`` with the rule that read it) and whether
it matches the reference. It also carries the data set's stop rule for the decoding loop
(``ends_solution(step)``). Graders are picked by name in the data set config
(``dataset.grader``), see :data:`GRADERS`; ``a+b`` grades with ``a`` and also records
``b``'s verdict (``correct_b`` in the results, ``accuracy_b`` in the metrics):

- ``exact_number``: the toy world's plain numbers, from the last ``\\boxed{}``; its stop
  rule is the toy task's (a step holding ``\\boxed{``).
- ``math_verify``: :mod:`gsi.grading.mathverify` (final-answer extraction, conventions,
  math-verify in killable helper processes).
- ``prm800k``: :mod:`gsi.grading.prm800k`, the reference code's grader (mathruler).
- ``gsm8k``: :mod:`gsi.grading.numeric`, the number the boxed expression states.
- ``multiple_choice``: :mod:`gsi.grading.choice`, the option letter (MMLU-STEM).

Extraction rules are documented in :mod:`gsi.grading.extract`.
"""

from __future__ import annotations

from typing import Callable

from gsi.errors import ConfigError
from gsi.grading.base import AnswerGrader, CombinedGrader, Grade, Grader
from gsi.grading.choice import extract_choice, extract_choice_rule, grade_choice, options_of
from gsi.grading.extract import Extracted, contains_box, extract_boxed, extract_final_answer
from gsi.grading.mathverify import MathVerifyGrader
from gsi.grading.numeric import extract_number_answer, numbers_equal, parse_number
from gsi.grading.prm800k import PRM800KGrader
from gsi.types import Problem

__all__ = [
    "GRADERS", "AnswerGrader", "Grade", "Grader", "MathVerifyGrader", "PRM800KGrader", "extract_boxed",
    "extract_choice", "extract_final_answer", "get_grader", "options_of", "parse_number",
]


def exact_number(predicted: str | None, reference: str) -> bool:
    """Numeric equality of two plain numbers (``"012"`` equals ``"12"``)."""
    if predicted is None:
        return False
    try:
        return float(predicted) == float(reference)
    except ValueError:
        return predicted.strip() == reference.strip()


class ExactNumberGrader(AnswerGrader):
    """The toy world: the last ``\\boxed{}``, a plain number; stops at a step with a box."""

    name = "exact_number"

    def extract(self, text: str, problem: Problem) -> Extracted:
        answer = extract_boxed(text)
        return Extracted(answer, "last_box" if answer is not None else None)

    def equal(self, answer: str, problem: Problem) -> bool:
        return exact_number(answer, problem.answer)

    def ends_solution(self, step: str) -> bool:
        return contains_box(step)


class NumberGrader(AnswerGrader):
    """GSM8K (:mod:`gsi.grading.numeric`)."""

    name = "gsm8k"

    def extract(self, text: str, problem: Problem) -> Extracted:
        return extract_number_answer(text)

    def equal(self, answer: str, problem: Problem) -> bool:
        return numbers_equal(answer, problem.answer)


class ChoiceGrader(AnswerGrader):
    """Multiple choice (:mod:`gsi.grading.choice`)."""

    name = "multiple_choice"

    def extract(self, text: str, problem: Problem) -> Extracted:
        return extract_choice_rule(text, options_of(problem.question or problem.prompt))

    def equal(self, answer: str, problem: Problem) -> bool:
        return grade_choice(Extracted(answer, None), problem)


GRADERS: dict[str, Callable[[], AnswerGrader]] = {
    "exact_number": ExactNumberGrader,
    "math_verify": MathVerifyGrader,
    "prm800k": PRM800KGrader,
    "gsm8k": NumberGrader,
    "multiple_choice": ChoiceGrader,
}


def get_grader(name: str) -> AnswerGrader:
    """A fresh grader by name (``dataset.grader``; ``a+b``: ``a``, also recording ``b``)."""
    names = [n.strip() for n in name.split("+")]
    unknown = [n for n in names if n not in GRADERS]
    if unknown or len(set(names)) != len(names):
        bad = unknown[0] if unknown else name
        raise ConfigError(f"dataset.grader={bad!r} is not a grader; choose from {sorted(GRADERS)} "
                          "(or several joined by '+', each once)")
    if len(names) == 1:
        return GRADERS[name]()
    return CombinedGrader([(n, GRADERS[n]()) for n in names])
