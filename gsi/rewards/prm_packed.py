"""The transformers PRMs' scoring with a shared, cached prefix per problem.

A problem's candidates differ only after the steps chosen so far, so the PRM input of
``previous + [candidate]`` is one shared prefix (the conversation up to the candidate)
plus a few tokens of the candidate. The prefix runs once per problem, or only its new
tokens when the previous step's prefix is cached; the candidates are packed after it in
one row under a tree mask (:mod:`gsi.engines.hf_tree`). A step's probability depends
only on the tokens up to its tag (the backbone is causal), so it is the same number as
in a full run of the input, up to float rounding.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsi.groups import split_by_problem
from gsi.rewards.prm_format import aggregate, encode_group


def shared_prefix(seqs: Sequence[Sequence[int]], stop_id: int) -> int:
    """Length of the prefix the sequences share before each one's last ``stop_id`` (its
    own step's tag), cut after the last ``stop_id`` in it when there is one: the steps chosen so far, which every later step's inputs start
    with (the candidates' common first tokens are not: the next step may continue from
    a step outside this set, e.g. a fallback)."""
    first = np.asarray(seqs[0])
    n = min(len(s) - 1 - list(reversed(s)).index(stop_id) for s in seqs)  # before each one's own tag
    for s in seqs[1:]:
        differ = np.nonzero(np.asarray(s[:n]) != first[:n])[0]
        n = int(differ[0]) if len(differ) else n
    tags = np.nonzero(first[:n] == stop_id)[0]
    return int(tags[-1]) + 1 if len(tags) else max(n, 1)


def packed_rewards(prm, questions, previous, candidates) -> list[np.ndarray]:
    """``ProcessReward.score`` of an :class:`~gsi.rewards.prm.HFQwenPRM`, packed: judged
    at its step tags, by the positive class of its 2-class head."""
    import torch

    tag = prm.step_tag_id
    encoded = [e for q, prev, cands in zip(questions, previous, candidates) for e in encode_group(prm, q, prev, cands)]
    items = [None if e is None else (tuple(e), tuple(k for k, t in enumerate(e) if t == tag)) for e in encoded]
    return score_packed(prm, items, candidates, prm.model.model,
                        lambda hidden: torch.softmax(prm.model.score(hidden).float(), dim=-1)[..., 1],
                        lambda seqs: shared_prefix([ids for ids, _ in seqs], tag))


def score_packed(prm, items, candidates, body, token_probs, cut) -> list[np.ndarray]:
    """Rewards of judged inputs ``items`` (per candidate, problem by problem: ``(token ids,
    indices of the tokens judging each step)`` or None -> NaN), run through ``body`` (the
    PRM's base model) packed per problem; ``token_probs(hidden)`` gives every position's
    probability, ``cut(items of a problem)`` the length of the prefix they share. ``prm``
    brings ``batch_size``, ``prefix_cache`` (its extras: the prefix's per-token
    probabilities), ``pad_id``, ``device`` and ``aggregation``."""
    owners = [i for i, cands in enumerate(candidates) for _ in cands]
    groups: dict[int, list[tuple]] = {}
    for i, e in zip(owners, items):
        if e is not None and e not in groups.setdefault(i, []):
            groups[i].append(e)  # identical inputs are scored once
    groups = {i: g for i, g in groups.items() if g}
    probs: dict[tuple[int, tuple], np.ndarray] = {}
    order = sorted(groups, key=lambda i: sum(len(ids) for ids, _ in groups[i]))
    chunk: list[int] = []
    store: list = []  # one store for the whole call: the cache holds every live problem
    for i in order:
        if chunk and sum(len(groups[k]) for k in chunk) + len(groups[i]) > prm.batch_size:
            store += _run(prm, chunk, groups, probs, body, token_probs, cut)
            chunk = []
        chunk.append(i)
    if chunk:
        store += _run(prm, chunk, groups, probs, body, token_probs, cut)
    if prm.prefix_cache.max_entries > 0:
        prm.prefix_cache.store_all(store)
    values = np.full(len(items), np.nan)
    for k, (i, e) in enumerate(zip(owners, items)):
        if e is not None:
            values[k] = aggregate(probs[(i, e)], prm.aggregation)
    return split_by_problem(values, candidates)


def _run(prm, problems: list[int], groups: dict, probs: dict, body, token_probs, cut) -> list:
    """Step probabilities of every input of ``problems``, one packed row per problem (rows
    of similar size together), into ``probs``; returns the prefixes to cache."""
    import torch

    from gsi.engines.hf_tree import bucketed_tree_forward, prefix_items

    prefixes, conts = [], []
    for i in problems:
        at = cut(groups[i])
        prefixes.append(list(groups[i][0][0][:at]))
        conts.append([list(ids[at:]) for ids, _ in groups[i]])
    store = []
    with torch.inference_mode():
        for members, batch in bucketed_tree_forward(body, list(zip(prefixes, conts)), prm.prefix_cache, prm.pad_id,
                                                    prm.device):
            positive = token_probs(batch.hidden).double().cpu()
            extras = []
            for b, k in enumerate(members):
                i, prefix, c = problems[k], prefixes[k], batch.cached[b]
                cached = batch.extras[b] if c else torch.zeros(0, dtype=torch.float64)
                on_prefix = torch.cat([cached, positive[b, : len(prefix) - c]])  # per-token, whole prefix
                extras.append(on_prefix)
                for j, (ids, points) in enumerate(groups[i]):
                    start = batch.starts[b][j]
                    per_token = torch.cat([on_prefix, positive[b, start : start + len(ids) - len(prefix)]]).numpy()
                    probs[(i, (ids, points))] = per_token[list(points)]
            if prm.prefix_cache.max_entries > 0:
                store += prefix_items([prefixes[k] for k in members], batch, extras)
    return store
