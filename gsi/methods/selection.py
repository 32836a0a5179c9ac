"""Numerics shared by every method: stable soft-max selection over candidates.

Everything goes through log-sum-exp in float64; no unnormalised score is exponentiated.
Invalid entries (NaN) become ``-inf``. ``beta = inf`` means hard argmax with uniform
tie-breaking.
"""

from __future__ import annotations

import math

import numpy as np


def clean(values: np.ndarray) -> np.ndarray:
    """float64 copy with NaN replaced by -inf (a missing reward counts as the worst)."""
    out = np.asarray(values, dtype=np.float64).copy()
    out[np.isnan(out)] = -np.inf
    return out


def softmax_from_logits(logits: np.ndarray) -> np.ndarray | None:
    """Normalised probabilities from log-weights, or None when every weight is -inf."""
    logits = clean(logits)
    top = logits.max(initial=-np.inf)
    if not np.isfinite(top):
        if top == np.inf:  # infinite weights share the mass equally
            mask = logits == np.inf
            return mask / mask.sum()
        return None
    with np.errstate(over="ignore"):
        shifted = logits - top  # -inf stays -inf; huge gaps underflow to weight 0
    log_z = math.log(np.exp(shifted).sum())
    return np.exp(shifted - log_z)


def argmax_probabilities(scores: np.ndarray) -> np.ndarray | None:
    """Uniform over the maximisers of ``scores``; None when all are -inf."""
    scores = clean(scores)
    top = scores.max(initial=-np.inf)
    if top == -np.inf:
        return None
    mask = scores == top
    return mask / mask.sum()


def tempered_probabilities(beta: float, rewards: np.ndarray, log_ratio: np.ndarray | None = None):
    """``softmax(beta * r + log_ratio)``; with ``beta = inf`` the argmax of ``r``.

    ``log_ratio`` is ``log pi_B - log pi_S`` for importance weighting (GSI), or None.
    Candidates with an invalid reward get probability zero whatever ``beta`` is.
    """
    rewards = clean(rewards)
    valid = rewards > -np.inf
    if math.isinf(beta):
        if log_ratio is None:
            return argmax_probabilities(rewards)
        # beta -> inf: the importance weight no longer matters among reward maximisers
        # unless it is -inf (a candidate the target cannot produce).
        ratio = clean(log_ratio)
        return argmax_probabilities(np.where(ratio > -np.inf, rewards, -np.inf))
    logits = np.where(valid, beta * np.where(valid, rewards, 0.0), -np.inf)
    if log_ratio is not None:
        logits = logits + clean(log_ratio)
        logits[np.isnan(logits)] = -np.inf
    return softmax_from_logits(logits)


def tilted_scores(rewards: np.ndarray, log_ratio: np.ndarray, beta: float) -> np.ndarray:
    """GSI's tilted rewards ``s = r + log_ratio / beta`` (``log_ratio = log pi_B - log pi_S``).

    ``beta = inf``: ``s = r`` where the target can produce the step (ratio > -inf);
    ``beta = 0``: ``r`` pushed to +-inf by the sign of the ratio (0 leaves ``r``);
    a NaN ratio gives ``-inf`` (never accepted).
    """
    r = clean(rewards)
    d = np.asarray(log_ratio, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if math.isinf(beta):
            s = np.where(d > -np.inf, r, -np.inf)
        elif beta == 0.0:
            s = r + np.where(d > 0, np.inf, np.where(d < 0, -np.inf, 0.0))
        else:
            s = r + d / beta
    s[np.isnan(d)] = -np.inf
    return s


def draw(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """Draw an index by inverse CDF with one uniform from ``rng``."""
    cdf = np.cumsum(probabilities)
    u = rng.random() * cdf[-1]
    return int(min(np.searchsorted(cdf, u, side="right"), len(cdf) - 1))
