"""``prm800k``: the PRM800K grader the reference code graded the paper's numbers with.

It runs ``mathruler.grader.grade_answer`` (PyPI ``mathruler`` packages PRM800K's
``grade_answer``: MATH normalisation, then sympy equality, with PRM800K's own rules:
unreduced fractions are wrong, tuples and sets are compared in order, an integer
reference needs an integer answer) on the reference code's extraction, the *last*
``\\boxed{}`` (``extract_boxed``), in the same killable helper processes as math-verify.
No conventions of :mod:`gsi.grading.conventions` are applied: this grader reproduces
the paper's grading, differences included.
"""

from __future__ import annotations

from gsi.grading.base import AnswerGrader
from gsi.grading.extract import NOTHING, Extracted, extract_boxed
from gsi.grading.helper import HelperPool
from gsi.types import Problem


class PRM800KGrader(AnswerGrader):
    name = "prm800k"

    def __init__(self, timeout_s: float = 5.0, startup_timeout_s: float = 120.0, workers: int = 2) -> None:
        self.workers = workers
        self.pool = HelperPool(("prm800k",), workers, timeout_s, startup_timeout_s)

    def extract(self, text: str, problem: Problem) -> Extracted:
        answer = extract_boxed(text)
        return Extracted(answer, "last_box") if answer is not None else NOTHING

    def equal(self, answer: str, problem: Problem) -> bool:
        return self.pool.equal({"kind": "prm800k", "gold": problem.answer, "pred": answer})

    def close(self) -> None:
        self.pool.close()
