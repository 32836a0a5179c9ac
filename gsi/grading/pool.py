"""Grading off the decoding loop's critical path.

The loop hands each finished solution to a :class:`GradingQueue` and goes on decoding;
``grader.workers`` threads grade meanwhile (math-verify and PRM800K do their work in
helper processes, so threads run in parallel). Results come back in the order the
problems finished decoding, so ``results.jsonl`` is written in the same order as with
grading inline.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

from gsi.grading.base import Grade
from gsi.types import Problem

R = TypeVar("R")


class GradingQueue(Generic[R]):
    """Grades in the background; :meth:`ready` returns the finished results in order."""

    def __init__(self, grader: Callable[[str, Problem], Grade], workers: int | None = None) -> None:
        self.grader = grader
        count = workers if workers is not None else int(getattr(grader, "workers", 1))
        self._executor = ThreadPoolExecutor(max(1, count), thread_name_prefix="grader")
        self._pending: deque[tuple[Future, Callable[[Grade], R]]] = deque()

    def submit(self, text: str, problem: Problem, make_result: Callable[[Grade], R]) -> None:
        """Grade ``text`` in the background; ``make_result(grade)`` builds the result."""
        self._pending.append((self._executor.submit(self.grader, text, problem), make_result))

    def ready(self, wait: bool = False) -> list[R]:
        """Results whose grading finished, in submission order (all of them if ``wait``);
        a grader's exception is raised here."""
        out = []
        while self._pending and (wait or self._pending[0][0].done()):
            future, make_result = self._pending.popleft()
            out.append(make_result(future.result()))
        return out

    def close(self) -> None:
        """Stop the worker threads (pending gradings are dropped)."""
        for future, _ in self._pending:
            future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)
