"""What every grader gives back, and the shape graders share: extract, then compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gsi.grading.extract import Extracted, ends_with_final_answer
from gsi.types import Problem


@dataclass(frozen=True)
class Grade:
    """``answer``: what was read from the solution (None: nothing); ``correct``: it matches the
    reference; ``rule``: which extraction rule read it; ``also``: other graders' verdicts
    (``{"prm800k": True}``) when several were asked for (``dataset.grader=math_verify+prm800k``)."""

    answer: str | None
    correct: bool
    rule: str | None = field(default=None, compare=False)
    also: dict[str, bool] = field(default_factory=dict, compare=False)


class Grader(Protocol):
    def __call__(self, text: str, problem: Problem) -> Grade: ...


class AnswerGrader:
    """A grader in two steps: :meth:`extract` the final answer, then :meth:`equal` to the
    reference. :meth:`ends_solution` is the data set's stop rule for the decoding loop;
    ``workers`` is how many solutions it can grade at once (the loop's grading pool)."""

    name = "answer"
    workers = 1

    def extract(self, text: str, problem: Problem) -> Extracted:
        raise NotImplementedError

    def equal(self, answer: str, problem: Problem) -> bool:
        raise NotImplementedError

    def ends_solution(self, step: str) -> bool:
        return ends_with_final_answer(step)

    def __call__(self, text: str, problem: Problem) -> Grade:
        found = self.extract(text, problem)
        ok = found.answer is not None and bool(problem.answer.strip()) and self.equal(found.answer, problem)
        return Grade(found.answer, bool(ok), found.rule)

    def close(self) -> None:
        """Release helper processes, if any."""


class CombinedGrader(AnswerGrader):
    """The first grader decides ``correct``; the others' verdicts go to ``Grade.also``."""

    def __init__(self, graders: list[tuple[str, AnswerGrader]]) -> None:
        self.graders = graders
        self.name = "+".join(name for name, _ in graders)
        self.workers = max(g.workers for _, g in graders)

    def ends_solution(self, step: str) -> bool:
        return self.graders[0][1].ends_solution(step)

    def __call__(self, text: str, problem: Problem) -> Grade:
        first = self.graders[0][1](text, problem)
        also = {name: g(text, problem).correct for name, g in self.graders[1:]}
        return Grade(first.answer, first.correct, first.rule, also)

    def close(self) -> None:
        for _, g in self.graders:
            g.close()
