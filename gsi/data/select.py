"""The stable limit / shard selection of a data set's problems (by a hash of the problem id)."""

from __future__ import annotations

import hashlib
from typing import Sequence

from gsi.types import Problem


def shard_of(problem_id: str, count: int) -> int:
    """Stable shard of a problem: a hash of its id, independent of order and batch size."""
    digest = hashlib.sha256(problem_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") % count


def select(problems: Sequence[Problem], limit: int | None, index: int, count: int) -> list[Problem]:
    """The first ``limit`` problems of the data set, then this shard's part of them."""
    chosen = list(problems if limit is None else problems[:limit])
    return [p for p in chosen if shard_of(p.id, count) == index]
