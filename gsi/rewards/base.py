"""The process-reward protocol: score candidate steps given the steps chosen so far."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class ProcessReward(Protocol):
    """``score`` returns, per problem, one reward in [0, 1] per candidate step.

    ``questions[i]`` is problem i's statement (``Problem.question``), ``previous[i]`` the steps chosen so far
    and ``candidates[i]`` the new steps to judge; a candidate is scored as the last step
    of ``previous[i] + [candidate]``. NaN means "no score" (treated as -inf downstream).
    One call covers the whole batch so an engine can batch it.
    """

    name: str

    def score(
        self,
        questions: Sequence[str],
        previous: Sequence[Sequence[str]],
        candidates: Sequence[Sequence[str]],
    ) -> list[np.ndarray]: ...
