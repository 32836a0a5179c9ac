"""``math_verify``: symbolic equivalence of the final answer with the reference (math-verify).

Extraction: :func:`gsi.grading.extract.extract_final_answer` (all boxes of the final
answer, else the "final answer is" sentence). Comparison: the conventions of
:mod:`gsi.grading.conventions` (clock times decided there; percent, empty set, minus
normalised; ``i`` as the imaginary unit where the problem is about complex numbers),
then math-verify in killable helper processes (:class:`gsi.grading.helper.HelperPool`).
"""

from __future__ import annotations

from gsi.grading.base import AnswerGrader
from gsi.grading.conventions import about_complex_numbers, normalize, times_equal
from gsi.grading.extract import Extracted, extract_final_answer
from gsi.grading.helper import HelperPool
from gsi.types import Problem


class MathVerifyGrader(AnswerGrader):
    """math-verify with a per-answer time limit ``timeout_s``; ``workers`` helper processes."""

    name = "math_verify"
    kind = "math_verify"

    def __init__(self, timeout_s: float = 5.0, startup_timeout_s: float = 120.0, workers: int = 2) -> None:
        self.workers = workers
        self.pool = HelperPool((self.kind,), workers, timeout_s, startup_timeout_s)

    @property
    def timeout_s(self) -> float:
        return self.pool.timeout_s

    @property
    def timeouts(self) -> int:
        return self.pool.timeouts

    def extract(self, text: str, problem: Problem) -> Extracted:
        return extract_final_answer(text, problem.answer)

    def equal(self, answer: str, problem: Problem) -> bool:
        return self.equivalent(answer, problem.answer, problem.question or problem.prompt)

    def equivalent(self, answer: str, reference: str, question: str = "") -> bool:
        """True iff equal under the conventions and math-verify within the time limit."""
        as_times = times_equal(answer, reference)
        if as_times is not None:
            return as_times
        request = {"kind": self.kind, "gold": normalize(reference), "pred": normalize(answer),
                   "complex": about_complex_numbers(question, reference)}
        return self.pool.equal(request)

    def close(self) -> None:
        self.pool.close()
