"""The reference code's PRM reading, for measuring its effect (README "Where we differ").

The reference (j-geuter/GSI with reward_hub) splits the whole response on "\\n\\n" and tags
every piece; a candidate step ends with "\\n\\n", so the last piece is an empty step and the
LAST aggregation reads the score at that empty step's tag, not at the candidate's own.
:class:`TrailingEmptyStep` wraps any :class:`~gsi.rewards.base.ProcessReward` and asks it
for that reading: the candidate becomes a previous step and an empty step is scored after
it (only for candidates that end with the separator, as in the reference).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsi.backends.law import STEP_SEPARATOR


class TrailingEmptyStep:
    """``inner``'s score of an empty step after each candidate that ends with "\\n\\n"."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = f"{getattr(inner, 'name', 'prm')}+trailing_empty_step"

    def score(
        self, questions: Sequence[str], previous: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        own = self.inner.score(questions, previous, candidates)
        qs, prev, where = [], [], []
        for k, (q, p, group) in enumerate(zip(questions, previous, candidates)):
            for i, c in enumerate(group):
                if c.endswith(STEP_SEPARATOR):
                    qs.append(q), prev.append([*p, c]), where.append((k, i))
        if qs:
            trailing = self.inner.score(qs, prev, [[""] for _ in qs])
            for (k, i), value in zip(where, trailing):
                own[k] = np.array(own[k], dtype=np.float64)
                own[k][i] = float(value[0])
        return own
