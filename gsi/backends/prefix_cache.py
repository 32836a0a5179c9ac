"""Cross-step reuse of prompt KV caches for the transformers backend.

At step k+1 a problem's prompt is its step-k prompt plus the chosen step, so the KV
cache of the step-k prompt covers all but a few tokens. :class:`PrefixCache` keeps the
per-sequence caches of recent prompts (LRU) and finds, for a new prompt, the longest
cached prefix; the backend then runs only the new tokens.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Sequence

KV = list  # per layer: (keys [heads, length, dim], values [heads, length, dim])


class PrefixCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self._lengths: Counter[int] = Counter()
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    def clear(self) -> None:
        """Forget every entry (a new run starts from the same state as a fresh model)."""
        self._entries.clear()
        self._lengths.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: Sequence[int]) -> tuple[int, KV | None]:
        """(number of leading tokens whose KV is known, that KV) — always < len(ids),
        so the caller has at least one token to run and gets the last logits."""
        if self.max_entries <= 0:
            return 0, None
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
            return use, [(k[:, :use], v[:, :use]) for k, v in entry]
        self.misses += 1
        return 0, None

    def store(self, ids: Sequence[int], kv: KV) -> None:
        if self.max_entries <= 0:
            return
        key = tuple(ids)
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        self._entries[key] = kv
        self._lengths[len(key)] += 1
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._lengths[len(old)] -= 1
            if not self._lengths[len(old)]:
                del self._lengths[len(old)]
