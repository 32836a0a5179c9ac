"""A process reward given by an explicit function of (question, previous steps, step).

The reward side of the enumerable world (:mod:`gsi.exact`): with
:class:`gsi.backends.table.TableLM` it lets the real loop and methods run on a world
whose laws and rewards are known exactly.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

RewardTable = Callable[[str, Sequence[str], str], float]


class TableReward:
    """``table(question, previous, candidate)`` is the reward of ``candidate`` as the next
    step after ``previous``; NaN means "no score", as for any :class:`ProcessReward`."""

    def __init__(self, table: RewardTable, name: str = "table_reward") -> None:
        self.table = table
        self.name = name

    def score(
        self,
        questions: Sequence[str],
        previous: Sequence[Sequence[str]],
        candidates: Sequence[Sequence[str]],
    ) -> list[np.ndarray]:
        return [
            np.array([self.table(q, prev, c) for c in cands], dtype=np.float64)
            for q, prev, cands in zip(questions, previous, candidates)
        ]
