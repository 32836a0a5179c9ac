"""Reading a continuation's log-prob out of vLLM's prompt log-probs, with prefix-cache hits.

vLLM (V1 runners) returns a prompt log-prob row for every prompt position; a position
whose hidden state came from the prefix cache has no row. A request ``prompt + step``
whose cache hit reaches into the step (``num_cached_tokens >= len(prompt)``) therefore
lacks the rows of the step's first tokens. The log-prob of token ``p`` depends only on
tokens ``0..p``, so the missing number equals the one another request with the same
tokens ``0..p`` computed: the sibling candidate that wrote that cache block, usually in
the same call. :class:`RowMemo` keeps each computed position's number under its token
prefix and fills the gaps from it; a request it cannot complete is re-scored without
reading the cache.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsi.types import SamplingParams


def position_logprobs(flat, rows: Sequence[int], targets: Sequence[int], raw: bool,
                      params: SamplingParams) -> np.ndarray:
    """Log-prob of ``targets[i]`` at prompt log-prob row ``rows[i]`` of ``flat`` (vLLM's
    ``FlatLogprobs``) under the sampling law. ``raw``: the row's own number (the law is the
    engine's logits, as at temperature 1 and top-p 1); otherwise the law is rebuilt from
    the row's tokens with :func:`~gsi.backends.law.sampling_logprobs`."""
    if not rows:
        return np.zeros(0)
    if raw:
        return np.array([flat.logprobs[flat.start_indices[r]] for r in rows], dtype=np.float64)
    import torch

    from gsi.backends.law import sampling_logprobs

    vocab = max(max(flat.token_ids[flat.start_indices[r] : flat.end_indices[r]]) for r in rows) + 1
    table = torch.full((len(rows), vocab), float("-inf"), dtype=torch.float64)
    for i, r in enumerate(rows):
        lo, hi = flat.start_indices[r], flat.end_indices[r]
        table[i, flat.token_ids[lo:hi]] = torch.tensor(flat.logprobs[lo:hi], dtype=torch.float64)
    logp = sampling_logprobs(table, params.temperature, params.top_p)
    return logp[torch.arange(len(rows)), torch.tensor(list(targets))].numpy()


def _chain(h: int, tokens: Sequence[int]) -> list[int]:
    out = []
    for token in tokens:
        h = hash((h, token))
        out.append(h)
    return out


def prefix_keys(ids: Sequence[int], start: int, heads: dict | None = None) -> list[int]:
    """A key per position ``p >= start`` standing for the tokens ``ids[0..p]`` (the same
    key whatever ``start`` is): a hash chain from the first token, so a key costs O(1)
    once the chain has passed the prompt, whose end ``heads`` caches per prompt (no tuple
    of a 1000-token prefix per position)."""
    head = tuple(ids[:start])
    h = None if heads is None else heads.get(head)
    if h is None:
        chained = _chain(0, head)
        h = chained[-1] if chained else 0
        if heads is not None:
            heads[head] = h
    return _chain(h, ids[start:])


class RowMemo:
    """Per-position log-probs of one scoring call, keyed by the token prefix they predict
    (:func:`prefix_keys`); ``previous`` holds the last call's, whose cache blocks the
    engine may hit again."""

    def __init__(self, previous: dict[int, float] | None = None) -> None:
        self.values: dict[int, float] = {}
        self.previous = previous or {}
        self.pending: list[tuple[int, list[int], np.ndarray]] = []
        self.heads: dict = {}  # chain value at the end of each prompt of this call

    def add(self, j: int, ids: Sequence[int], start: int, cached: int, known: np.ndarray) -> float | None:
        """Request ``j`` (tokens ``ids``, continuation from ``start``) with ``cached`` tokens
        from the cache and ``known``: the numbers of positions ``max(start, cached + 1)`` on.
        Returns its total when complete; else keeps it for :meth:`resolve`."""
        first = max(start, cached + 1)
        keys = prefix_keys(ids, start, self.heads)
        for key, value in zip(keys[first - start :], known):
            self.values[key] = float(value)
        if first == start:
            return float(np.sum(known))
        self.pending.append((j, keys[: first - start], known))
        return None

    def _lookup(self, key: int) -> float | None:
        value = self.values.get(key)
        return self.previous.get(key) if value is None else value

    def resolve(self) -> tuple[dict[int, float], list[int]]:
        """(totals of the pending requests whose missing positions some request computed,
        the others)."""
        done, left = {}, []
        for j, keys, known in self.pending:
            missing = [self._lookup(k) for k in keys]
            if any(v is None for v in missing):
                left.append(j)
            else:
                done[j] = float(np.sum(missing) + np.sum(known))
        self.pending = []
        return done, left
