"""Upper bounds on TV(method, pi_beta,B) for the importance-sampling methods (docs/BOUNDS.md).

Every method here picks one of n candidates with probability proportional to a weight,
which is sampling-importance-resampling (SIR) of a target p from a proposal q. For SIR,
Jensen's inequality gives, with w = p / q,

    TV(SIR_n, p) <= p(q = 0) + sum_{q > 0} p(y) (w(y) - 1)_+ / (w(y) + n - 1)     (sir_bound)
                 <= p(q = 0) + (chi2(p || q) + 1/4) / n.

``step_bound`` applies it to ``gsi_no_reject`` (p = pi_beta,B, q = pi_S), ``soft_bon_big``
(q = pi_B) and ``gsi_consistent`` (accepted part plus the restricted refill);
``explicit_step_bound`` replaces the tilted quantities by the reward range R, beta and
chi2(pi_B || pi_S) only. Whole solutions add the per-step bounds along the target's tree.
"""

from __future__ import annotations

import math

import numpy as np

from gsi.exact.distributions import target_step
from gsi.exact.world import Laws, Path, World
from gsi.methods import MethodParams, rules
from gsi.methods.selection import tilted_scores
from gsi.types import SamplingParams

BOUNDED = ("gsi_no_reject", "gsi_consistent", "soft_bon_big")


def sir_bound(p: np.ndarray, q: np.ndarray, n: int) -> float:
    """Upper bound on TV(law of SIR with n draws from q, target p)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    cov = q > 0
    w = p[cov] / q[cov]
    return min(1.0, float(p[~cov].sum() + np.sum(p[cov] * np.maximum(w - 1.0, 0.0) / (w + n - 1.0))))


def chi2(p: np.ndarray, q: np.ndarray) -> float:
    """chi2(p || q) = sum p^2 / q - 1 (inf if q misses some of p)."""
    on = p > 0
    if np.any(q[on] <= 0):
        return math.inf
    return float(np.sum(p[on] ** 2 / q[on]) - 1.0)


def rejected_set(laws: Laws, params: MethodParams) -> np.ndarray:
    """L: the steps GSI never accepts — tilted reward s below u (under ``params.tie_rule``:
    s < u, or s <= u for a strict rule), or pi_S(y) = 0."""
    with np.errstate(divide="ignore"):
        s = tilted_scores(laws.rewards, np.log(laws.big) - np.log(laws.small), params.beta)
    taken = np.array([rules.accepts("gsi_consistent", float(v), params.threshold, params.tie_rule) for v in s])
    return ~taken | (laws.small == 0)


def _binomial_pmf(m: np.ndarray, n: int, p: float) -> np.ndarray:
    if p >= 1.0:
        return (m == n).astype(np.float64)
    log_c = np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in m])
    return np.exp(log_c + m * math.log(p) + (n - m) * math.log1p(-p))


def _refill_bound(laws: Laws, target: np.ndarray, low: np.ndarray, n_big: int) -> float:
    """TV(restricted refill, pi_beta,B(. | L)): given m of the n_B big candidates in L, it
    is SIR_m from pi_B(. | L); none in L (probability (1 - pi_B(L))^n_B) costs 1."""
    big_low = float(laws.big[low].sum())
    if big_low == 0.0:
        return 1.0
    p_low = np.where(low, target, 0.0)
    q_low = np.where(low, laws.big, 0.0)
    m = np.arange(1, n_big + 1)
    pmf = _binomial_pmf(m, n_big, big_low)
    per_m = np.array([sir_bound(p_low, q_low, int(k)) for k in m])
    return min(1.0, float((1.0 - big_low) ** n_big + pmf @ per_m))


def step_bound(name: str, laws: Laws, params: MethodParams, n_small: int, n_big: int) -> float:
    """The bound of docs/BOUNDS.md on the TV of one step to pi_beta,B."""
    target = target_step(laws, params.beta)[:-1]
    if name == "gsi_no_reject":
        return sir_bound(target, laws.small, n_small)
    if name == "soft_bon_big":
        return sir_bound(target, laws.big, n_big)
    if name == "gsi_consistent":
        low = rejected_set(laws, params)
        rho = float(target[low].sum())
        refill = _refill_bound(laws, target, low, n_big) if rho > 0 else 0.0
        return min(1.0, 2.0 * sir_bound(target, laws.small, n_small) + rho * refill)
    raise ValueError(f"no bound for method {name!r}; bounded methods: {', '.join(BOUNDED)}")


def explicit_step_bound(name: str, laws: Laws, params: MethodParams, n_small: int, n_big: int) -> float:
    """The same bounds in terms of n, beta, the reward range R and chi2(pi_B || pi_S) only
    (finite beta, pi_S covering pi_B):
    gsi_no_reject  (e^{2 beta R} (1 + chi2) - 3/4) / n_S,
    soft_bon_big   (e^{beta R} - 3/4) / n_B,
    gsi_consistent 2 x the first + 2 e^{beta R} (e^{beta R} - 3/4) / (n_B + 1) + e^{beta R - 1} / n_B.
    """
    rewards = laws.rewards[laws.big > 0]
    br = params.beta * float(rewards.max() - rewards.min())
    if math.isinf(br):
        return 1.0
    c2 = chi2(laws.big, laws.small)
    snis = (math.exp(2 * br) * (1.0 + c2) - 0.75) / n_small
    if name == "gsi_no_reject":
        return min(1.0, snis)
    if name == "soft_bon_big":
        return min(1.0, (math.exp(br) - 0.75) / n_big)
    if name == "gsi_consistent":
        refill = 2 * math.exp(br) * (math.exp(br) - 0.75) / (n_big + 1) + math.exp(br - 1) / n_big
        return min(1.0, 2 * snis + refill)
    raise ValueError(f"no bound for method {name!r}; bounded methods: {', '.join(BOUNDED)}")


def solution_bound(
    world: World,
    name: str,
    params: MethodParams,
    n_small: int,
    n_big: int,
    sampling: SamplingParams,
    explicit: bool = False,
) -> float:
    """TV of whole solutions <= sum over the tree's nodes of (target's probability of
    reaching the node) x (the step bound there): the hybrid argument, step by step."""
    bound = explicit_step_bound if explicit else step_bound
    total = 0.0

    def walk(path: Path, reach: float) -> None:
        nonlocal total
        laws = world.laws(path, sampling)
        total += reach * bound(name, laws, params, n_small, n_big)
        if len(path) + 1 < world.depth:
            for k, p in enumerate(target_step(laws, params.beta)[:-1]):
                if p > 0:
                    walk((*path, k), reach * p)

    walk((), 1.0)
    return min(1.0, total)
