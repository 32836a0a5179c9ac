"""Exact step and whole-solution distributions of every method on an enumerable world.

The n candidates of a step are exchangeable, so a method's step distribution is a sum
over the multinomial counts of the K steps (C(n+K-1, K-1) terms instead of K^n tuples).
For each count vector the candidates are laid out as the loop would hand them over and
the method's own :attr:`Method.probabilities` and :attr:`Method.accept_score` decide, as
:meth:`Method.choose` does; a rejected step is replaced by the exact law of
:attr:`Method.fallback` (soft_bon(pi_B, n_B), or gsi_consistent's restricted one, which
sees pi_S's log-probs of the big candidates) with n_B candidates from pi_B, as the loop
does. The accept decision follows ``params.tie_rule`` and a step whose candidates are all
below ``params.stop_below`` ends the solution, as in :meth:`Method.choose`. Nothing here
re-implements a method.

Outcome vectors have one entry per step (or per leaf of the tree) plus a last entry for
"no valid candidate" or "below the reward floor" (the loop stops the problem), which the
target never produces.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from gsi.exact.world import Laws, Path, World
from gsi.methods import Method, MethodParams, StepScores, rules
from gsi.methods.selection import argmax_probabilities, softmax_from_logits
from gsi.types import SamplingParams

MAX_COUNT_VECTORS = 60_000
# Count vectors less likely than this are skipped: at most MAX_COUNT_VECTORS * 1e-15
# of mass, far below anything reported.
NEGLIGIBLE_LOG_WEIGHT = math.log(1e-15)


@dataclass(frozen=True)
class StepDistribution:
    """``probs``: the chosen step (K entries) and "no valid candidate" (last entry);
    ``accepted``: probability that the step is a small-model step that was accepted;
    ``big_candidates``: expected number of candidates the big model generates."""

    probs: np.ndarray
    accepted: float
    big_candidates: float = 0.0


@dataclass(frozen=True)
class SolutionDistribution:
    """Law of whole solutions (one entry per leaf, then "stopped early"), the expected
    number of steps and of accepted small-model steps."""

    probs: np.ndarray
    expected_steps: float
    expected_accepted: float
    expected_big_candidates: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.expected_accepted / self.expected_steps if self.expected_steps > 0 else 0.0


# ---------------------------------------------------------------- measures
def tv(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q); inf where p puts mass that q does not."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    on = p > 0
    if np.any(q[on] <= 0):
        return math.inf
    return float(np.sum(p[on] * (np.log(p[on]) - np.log(q[on]))))


# ---------------------------------------------------------------- target
def target_step(laws: Laws, beta: float) -> np.ndarray:
    """pi_beta,B(y|x) ∝ pi_B(y|x) exp(beta r(x, y)) (beta = inf: argmax of r on pi_B's
    support), with a zero "no valid candidate" entry appended."""
    with np.errstate(divide="ignore"):
        log_big = np.log(laws.big)
    if math.isinf(beta):
        probs = argmax_probabilities(np.where(log_big > -np.inf, laws.rewards, -np.inf))
    else:
        probs = softmax_from_logits(beta * laws.rewards + log_big)
    assert probs is not None, "pi_B has no support"
    return np.append(probs, 0.0)


def target_solution(world: World, beta: float, sampling: SamplingParams) -> np.ndarray:
    """The product of the per-step targets along each leaf (the law GSI approximates
    when every step is drawn from pi_beta,B)."""
    out = np.ones(len(world.leaves) + 1)
    out[-1] = 0.0
    for i, leaf in enumerate(world.leaves):
        for t in range(world.depth):
            out[i] *= target_step(world.laws(leaf[:t], sampling), beta)[leaf[t]]
    return out


def leaf_rewards(world: World) -> np.ndarray:
    """Mean step reward along each leaf, then 0 for a solution that stopped early."""
    out = np.zeros(len(world.leaves) + 1)
    for i, leaf in enumerate(world.leaves):
        out[i] = np.mean([world.nodes[leaf[:t]].rewards[leaf[t]] for t in range(world.depth)])
    return out


# ---------------------------------------------------------------- methods
def count_vectors(n: int, k: int) -> Iterator[np.ndarray]:
    """Every vector of k non-negative integers summing to n (stars and bars)."""
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        edges = np.array((-1, *bars, n + k - 1))
        yield np.diff(edges) - 1


def method_step(
    method: Method, laws: Laws, params: MethodParams, n_small: int, n_big: int
) -> StepDistribution:
    """The exact law of the step the loop takes with ``method`` at a node with ``laws``."""
    n = method.num_candidates(n_small, n_big)
    proposal = laws.small if method.proposer == "small" else laws.big
    support = np.flatnonzero(proposal > 0)
    k = len(support)
    if math.comb(n + k - 1, k - 1) > MAX_COUNT_VECTORS:
        raise ValueError(
            f"n={n} with {k} possible steps has {math.comb(n + k - 1, k - 1)} count vectors "
            f"(> {MAX_COUNT_VECTORS}); use gsi.exact.montecarlo for this n"
        )
    with np.errstate(divide="ignore"):
        log_q, log_big, log_small = np.log(proposal), np.log(laws.big), np.log(laws.small)
    log_fact = np.array([math.lgamma(i + 1) for i in range(n + 1)])
    out = np.zeros(len(proposal) + 1)
    accepted = rejected = 0.0
    for counts in count_vectors(n, k):
        on = counts > 0
        log_weight = log_fact[n] - log_fact[counts].sum() + float(counts[on] @ log_q[support[on]])
        if log_weight < NEGLIGIBLE_LOG_WEIGHT:
            continue
        weight = math.exp(log_weight)
        idx = np.repeat(support, counts)
        scores = StepScores(
            laws.rewards[idx] if method.needs_reward else None,
            log_q[idx],
            log_big[idx] if method.needs_target_logprobs else None,
            log_small[idx] if method.needs_small_logprobs else None,
        )
        if rules.below_floor(scores.rewards, params.stop_below):  # stop_below: the solution ends
            out[-1] += weight
            continue
        probs = method.probabilities(scores, params)
        if probs is None:  # no valid candidate: a rejecting method falls back, others stop
            if method.rejects:
                rejected += weight
            else:
                out[-1] += weight
            continue
        start = 0
        for step, count in zip(support, counts):
            mass = weight * float(probs[start : start + count].sum())
            first, start = start, start + count
            if count == 0 or mass == 0.0:
                continue
            if method.rejects and not accepts(method, scores, first, params):
                rejected += mass
                continue
            out[step] += mass
            if method.proposer == "small":
                accepted += mass
    big = float(n) if method.proposer == "big" else 0.0
    if rejected > 0.0:
        out += rejected * method_step(method.fallback, laws, params, n_small, n_big).probs
        big += rejected * n_big
    return StepDistribution(out, accepted, big)


def accepts(method: Method, scores: StepScores, index: int, params: MethodParams) -> bool:
    """:meth:`Method.choose`'s accept decision for candidate ``index``: its score against
    the threshold under ``params.tie_rule`` (:func:`gsi.methods.rules.accepts`)."""
    assert method.accept_score is not None
    score = method.accept_score(scores, index, params)
    return rules.accepts(method.name, score, params.threshold, params.tie_rule)


def method_solution(
    world: World, method: Method, params: MethodParams, n_small: int, n_big: int, sampling: SamplingParams
) -> SolutionDistribution:
    """The exact law of whole solutions: per-step laws chained along the tree."""
    leaf_index = {leaf: i for i, leaf in enumerate(world.leaves)}
    out = np.zeros(len(world.leaves) + 1)
    steps = accepted = big = 0.0

    def walk(path: Path, reach: float) -> None:
        nonlocal steps, accepted, big
        step = method_step(method, world.laws(path, sampling), params, n_small, n_big)
        out[-1] += reach * step.probs[-1]
        steps += reach * (1.0 - step.probs[-1])
        accepted += reach * step.accepted
        big += reach * step.big_candidates
        for k, p in enumerate(step.probs[:-1]):
            if p == 0.0:
                continue
            child = (*path, k)
            if len(child) == world.depth:
                out[leaf_index[child]] += reach * p
            else:
                walk(child, reach * p)

    walk((), 1.0)
    return SolutionDistribution(out, steps, accepted, big)
