"""Prefix-sharing forward passes for causal transformers: no n-fold copy of a prefix.

A batch of *groups* — a prefix and the continuations that follow it (a problem's prompt
and its candidate steps; a PRM's partial solution and its candidate last steps) — runs
as one row per group: the prefix's cached KV (from a :class:`PrefixCache`, left-padded),
then the prefix's new tokens, then every continuation packed one after the other. A 4D
attention mask makes each continuation see the prefix and its own earlier tokens only,
and positions restart at the prefix length for each continuation, so every token gets
the hidden state it would get in its own unpadded sequence (up to float rounding). The
row costs prefix + sum of continuation lengths, not n * prefix.

Memory stays at prefix + n * W per group; the caller reads outputs only at the positions
it needs (:func:`gather`), in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from gsi.engines.prefix_cache import PrefixCache


@dataclass
class TreeBatch:
    """The result of :func:`tree_forward` (rows in the order of the groups given)."""

    hidden: Any  # [rows, Q, hidden]: last hidden states of the new part of each row
    cache: Any  # the KV cache after the pass (gsi.engines.hf_cache): [cached K | new Q] keys per row
    key_valid: Any  # [rows, K + Q] bool: the keys that are real tokens of the prefix
    cached: list[int]  # per row, prefix tokens that came from the cache
    extras: list[Any]  # per row, the cache's stored extra for those tokens (or None)
    starts: list[list[int]]  # per row, where each continuation starts in the new part
    known: int  # K: width of the cached part

    def prefix_end(self, row: int, prefix_len: int) -> int:
        """Index in the new part of the prefix's last token."""
        return prefix_len - self.cached[row] - 1


def additive_mask(allowed, dtype):
    """A boolean allowed-mask as the additive float mask every attention kernel takes."""
    import torch

    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


Groups = Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]]


def lookup_all(groups: Groups, prefix_cache: PrefixCache | None) -> list[tuple[int, Any, Any]]:
    """Each group's prefix looked up in ``prefix_cache``: (cached length, KV, extra)."""
    return [prefix_cache.lookup(p) if prefix_cache is not None else (0, None, None) for p, _ in groups]


def tree_forward(
    body,
    groups: Groups,
    prefix_cache: PrefixCache | None,
    pad_id: int,
    device: str,
    hits: Sequence[tuple[int, Any, Any]] | None = None,
) -> TreeBatch:
    """Run ``groups`` = [(prefix ids, [continuation ids, ...]), ...] through ``body``
    (a transformers base model: ``model.base_model``), reusing cached prefix KV
    (``hits``: the groups' :func:`lookup_all`, done here when not given).

    Every prefix needs at least one token; continuations may be empty.
    """
    import torch

    hits = lookup_all(groups, prefix_cache) if hits is None else list(hits)
    rows = len(groups)
    known = max((c for c, _, _ in hits), default=0)
    news, segs, pos, starts = [], [], [], []
    for (prefix, conts), (c, _, _) in zip(groups, hits):
        ids, seg, p = list(prefix[c:]), [0] * (len(prefix) - c), list(range(c, len(prefix)))
        row_starts = []
        for j, cont in enumerate(conts):
            row_starts.append(len(ids))
            ids += list(cont)
            seg += [j + 1] * len(cont)
            p += range(len(prefix), len(prefix) + len(cont))
        news.append(ids)
        segs.append(seg)
        pos.append(p)
        starts.append(row_starts)
    width = max(len(n) for n in news)
    from gsi.engines.hf import pad

    ids = pad(news, pad_id).to(device)
    seg = pad(segs, -1).to(device)
    positions = pad(pos, 0).to(device)
    # New part: causal, within the shared prefix (seg 0) or one's own continuation.
    q = torch.arange(width, device=device)
    causal = q[None, :, None] >= q[None, None, :]
    same = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
    new_allowed = causal & same & (seg[:, None, :] >= 0)
    new_allowed |= torch.eye(width, dtype=torch.bool, device=device)[None]  # padding sees itself
    cached_valid = torch.zeros((rows, known), dtype=torch.bool, device=device)
    for b, (c, _, _) in enumerate(hits):
        cached_valid[b, known - c:] = True
    allowed = torch.cat([cached_valid[:, None, :].expand(rows, width, known), new_allowed], dim=2)
    dtype = next(body.parameters()).dtype
    mask = additive_mask(allowed[:, None], dtype)
    from gsi.engines.hf_cache import growing_cache, prefilled_cache

    # the cached KV written once into buffers with room for this pass, which writes after
    # it (and later decoding steps too) instead of concatenating everything before
    if known:
        cache = prefilled_cache(hits, known, width)
    else:
        cache = growing_cache(body.config.num_hidden_layers)
    out = body(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    prefix_new = torch.zeros((rows, width), dtype=torch.bool, device=device)
    for b, ((prefix, _), (c, _, _)) in enumerate(zip(groups, hits)):
        prefix_new[b, : len(prefix) - c] = True
    key_valid = torch.cat([cached_valid, prefix_new], dim=1)
    return TreeBatch(out.last_hidden_state, out.past_key_values, key_valid, [c for c, _, _ in hits],
                     [e for _, _, e in hits], starts, known)


def size_buckets(widths: Sequence[int], known: Sequence[int], per_token: float, slack: float = 1.3) -> list[list[int]]:
    """Row indices in buckets of similar size, to run as separate :func:`tree_forward`
    calls: a bucket of rows padded to ``W`` new tokens over ``K`` cached ones costs about
    ``rows * W * (per_token + K + W)`` (``per_token``: a token's dense-layer work in units of
    attention to one key), kept within ``slack`` times what its rows cost unpadded."""
    order = sorted(range(len(widths)), key=lambda r: (widths[r], known[r]))
    buckets: list[list[int]] = []
    own = width = keys = 0.0
    for r in order:
        cost = widths[r] * (per_token + known[r] + widths[r])
        w, k = max(width, widths[r]), max(keys, known[r])
        if buckets and (len(buckets[-1]) + 1) * w * (per_token + k + w) <= slack * (own + cost):
            buckets[-1].append(r)
            own, width, keys = own + cost, w, k
        else:
            buckets.append([r])
            own, width, keys = cost, widths[r], known[r]
    return buckets


def per_token_cost(config) -> float:
    """A token's dense-layer work per layer in units of its attention to one key:
    ``(4 h^2 + 3 h I) / 2h`` for a transformer of hidden size h and MLP width I."""
    hidden = getattr(config, "hidden_size", 1)
    return 2.0 * hidden + 1.5 * getattr(config, "intermediate_size", 4 * hidden)


def bucketed_tree_forward(body, groups: Groups, prefix_cache: PrefixCache | None, pad_id: int,
                          device: str) -> Iterator[tuple[list[int], TreeBatch]]:
    """:func:`tree_forward` of ``groups`` in :func:`size_buckets` (a row of 11 new tokens is
    not padded to the 200 of another): ``(indices into groups, batch)`` per bucket, one
    bucket at a time (every prefix is looked up before the first runs)."""
    hits = lookup_all(groups, prefix_cache)
    widths = [len(p) - c + sum(len(x) for x in conts) for (p, conts), (c, _, _) in zip(groups, hits)]
    for rows in size_buckets(widths, [c for c, _, _ in hits], per_token_cost(body.config)):
        yield rows, tree_forward(body, [groups[r] for r in rows], None, pad_id, device, [hits[r] for r in rows])


def prefix_items(prefixes: Sequence[Sequence[int]], batch: TreeBatch, extras: Sequence[Any] | None = None) -> list:
    """``(ids, kv, extra)`` of each row's prefix, for :meth:`PrefixCache.store_all`
    (``extras[b]``: per-token outputs of the whole prefix)."""
    import torch

    items = []
    for b, prefix in enumerate(prefixes):
        # the prefix's keys are contiguous: cached ones end at ``known``, new ones start there
        lo, hi = batch.known - batch.cached[b], batch.known + len(prefix) - batch.cached[b]
        kv = [tuple(t[b, :, lo:hi].clone(memory_format=torch.contiguous_format) for t in (layer.keys, layer.values))
              for layer in batch.cache.layers]
        items.append((prefix, kv, None if extras is None else extras[b]))
    return items


def store_prefixes(prefix_cache: PrefixCache | None, prefixes: Sequence[Sequence[int]], batch: TreeBatch) -> None:
    """Keep each row's prefix KV for the next call (all rows of one call together)."""
    if prefix_cache is not None and prefix_cache.max_entries > 0:
        prefix_cache.store_all(prefix_items(prefixes, batch))


def token_logprobs(lm_head, hidden, targets, law, chunk: int = 1024):
    """``law(logits)[target]`` (log-probabilities) for ``hidden`` [M, H] and ``targets``
    [M], ``chunk`` rows of logits at a time (never all M x V at once)."""
    import torch

    out = torch.empty(len(targets), dtype=torch.float64, device=hidden.device)
    for start in range(0, len(targets), chunk):
        logp = law(lm_head(hidden[start : start + chunk]))
        out[start : start + chunk] = logp.gather(-1, targets[start : start + chunk, None]).squeeze(-1).double()
    return out
