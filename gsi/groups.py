"""Per-problem groups flattened for one batched engine call, and split back."""

from __future__ import annotations

from typing import Sized, Sequence

import numpy as np


def split_by_problem(values: Sequence[float] | np.ndarray, groups: Sequence[int | Sized]) -> list[np.ndarray]:
    """Undo the flattening of per-problem groups: one float64 array per problem.

    ``groups[i]`` is problem i's group (anything with a length, e.g. its candidates) or
    its size; ``values`` holds the groups' values one after the other.
    """
    out, start = [], 0
    for g in groups:
        size = g if isinstance(g, (int, np.integer)) else len(g)
        out.append(np.asarray(values[start : start + size], dtype=np.float64))
        start += size
    return out
