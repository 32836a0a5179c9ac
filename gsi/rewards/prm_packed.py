"""The transformers PRM's scoring with a shared, cached prefix per problem.

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
from gsi.rewards.prm_format import aggregate, solutions


def shared_prefix(seqs: Sequence[Sequence[int]], stop_id: int) -> int:
    """Length of the prefix the sequences share, cut before each one's last ``stop_id``
    (the candidate's own step tag stays with the candidate: the prefix is what the next
    step's inputs start with)."""
    limit = min(len(s) - 1 - list(reversed(s)).index(stop_id) for s in seqs)
    first = seqs[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in seqs):
        n += 1
    return max(n, 1)


def packed_rewards(prm, questions, previous, candidates) -> list[np.ndarray]:
    """``ProcessReward.score`` of an :class:`~gsi.rewards.prm.HFQwenPRM`, packed."""
    owners = [i for i, cands in enumerate(candidates) for _ in cands]
    encoded = [prm.encode(questions[i], sol) for i, sol in zip(owners, solutions(previous, candidates))]
    groups: dict[int, list[tuple[int, ...]]] = {}
    for i, e in zip(owners, encoded):
        if e is not None and tuple(e) not in groups.setdefault(i, []):
            groups[i].append(tuple(e))  # identical inputs are scored once
    groups = {i: g for i, g in groups.items() if g}
    probs: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
    order = sorted(groups, key=lambda i: sum(len(s) for s in groups[i]))
    chunk: list[int] = []
    for i in order:
        if chunk and sum(len(groups[k]) for k in chunk) + len(groups[i]) > prm.batch_size:
            _run(prm, chunk, groups, probs)
            chunk = []
        chunk.append(i)
    if chunk:
        _run(prm, chunk, groups, probs)
    values = np.full(len(encoded), np.nan)
    for k, (i, e) in enumerate(zip(owners, encoded)):
        if e is not None:
            values[k] = aggregate(probs[(i, tuple(e))], prm.aggregation)
    return split_by_problem(values, candidates)


def _run(prm, problems: list[int], groups: dict, probs: dict) -> None:
    """Step probabilities of every input of ``problems``, one packed row per problem."""
    import torch

    from gsi.engines.hf_tree import store_prefixes, tree_forward

    tag = prm.step_tag_id
    prefixes, conts = [], []
    for i in problems:
        cut = shared_prefix(groups[i], tag)
        prefixes.append(list(groups[i][0][:cut]))
        conts.append([list(s[cut:]) for s in groups[i]])
    with torch.inference_mode():
        batch = tree_forward(prm.model.model, list(zip(prefixes, conts)), prm.prefix_cache, prm.pad_id, prm.device)
        positive = torch.softmax(prm.model.score(batch.hidden).float(), dim=-1)[..., 1].double().cpu()
    extras = []
    for b, (i, prefix) in enumerate(zip(problems, prefixes)):
        c = batch.cached[b]
        cached = batch.extras[b] if c else torch.zeros(0, dtype=torch.float64)
        on_prefix = torch.cat([cached, positive[b, : len(prefix) - c]])  # per-token, whole prefix
        extras.append(on_prefix)
        for j, seq in enumerate(groups[i]):
            start = batch.starts[b][j]
            per_token = torch.cat([on_prefix, positive[b, start : start + len(seq) - len(prefix)]]).numpy()
            probs[(i, seq)] = per_token[np.asarray(seq) == tag]
    store_prefixes(prm.prefix_cache, prefixes, batch, extras)
