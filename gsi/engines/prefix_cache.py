"""Cross-step reuse of prefix KV caches for the transformers backend and PRMs.

At step k+1 a problem's prompt is its step-k prompt plus the chosen step, so the KV
cache of the step-k prompt covers all but a few tokens. :class:`PrefixCache` keeps the
per-sequence caches of recent prefixes and finds, for a new sequence, the longest cached
prefix; the caller then runs only the new tokens.

The cache is bounded by the live problems, not by a fixed count of stale prefixes:
storing a prefix drops the entries it extends (the problem has moved on), and the
number of entries never exceeds the largest number of sequences one call has stored
(the batch of live problems), least recently used first out; ``max_entries`` caps it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any, Sequence

KV = list  # per layer: (keys [heads, length, dim], values [heads, length, dim])


class PrefixCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], tuple[KV, Any]] = OrderedDict()
        self._lengths: Counter[int] = Counter()
        self._live = 0  # the most sequences one call has stored
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    def clear(self) -> None:
        """Forget every entry (a new run starts from the same state as a fresh model)."""
        self._entries.clear()
        self._lengths.clear()
        self._live = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: Sequence[int]) -> tuple[int, KV | None, Any]:
        """(number of leading tokens whose KV is known, that KV, their stored extra) —
        always < len(ids), so the caller has at least one token to run and gets the last
        outputs. ``extra`` is what :meth:`store` was given (sliced along its first
        dimension to the known length), or None."""
        if self.max_entries <= 0:
            return 0, None, None
        key = tuple(ids)
        for length in sorted(self._lengths, reverse=True):
            if length > len(key) or length < 2:
                continue
            entry = self._entries.get(key[:length])
            if entry is None:
                continue
            self._entries.move_to_end(key[:length])
            use = min(length, len(key) - 1)
            self.hits += 1
            self.reused_tokens += use
            kv, extra = entry
            return use, [(k[:, :use], v[:, :use]) for k, v in kv], None if extra is None else extra[:use]
        self.misses += 1
        return 0, None, None

    def store_all(self, items: Sequence[tuple[Sequence[int], KV, Any]]) -> None:
        """Store one call's prefixes ``(ids, kv, extra)``; see the module docstring for
        what is dropped."""
        if self.max_entries <= 0:
            return
        self._live = max(self._live, len({tuple(ids) for ids, _, _ in items}))
        for ids, kv, extra in items:
            self._store(tuple(ids), kv, extra)
        limit = min(self.max_entries, self._live)
        while len(self._entries) > limit:
            self._drop(next(iter(self._entries)))

    def _store(self, key: tuple[int, ...], kv: KV, extra: Any) -> None:
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        for length in [n for n in self._lengths if n < len(key)]:
            if key[:length] in self._entries:
                self._drop(key[:length])  # superseded: this problem has moved past it
        self._entries[key] = (kv, extra)
        self._lengths[len(key)] += 1

    def _drop(self, key: tuple[int, ...]) -> None:
        del self._entries[key]
        self._lengths[len(key)] -= 1
        if not self._lengths[len(key)]:
            del self._lengths[len(key)]
