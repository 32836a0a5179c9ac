"""Acceptance and stopping rules that the reference code (j-geuter/GSI, speculative.py)
applies differently from this project, as options of :class:`gsi.methods.MethodParams`.

* ``threshold_on`` — what GSI compares with the threshold: ``tilted`` (s = r + log(π_B/π_S)/β,
  the default), ``beta_tilted`` (β·s = β·r + log π_B − log π_S, the reference with
  ``--threshold-on-tilted``; defined at β = 0 too) or ``reward`` (the raw reward r, the
  reference without that flag). RSD always compares the raw reward, as in the reference.
* ``tie_rule`` — ``ge`` accepts score ≥ threshold (default), ``gt`` only score > threshold,
  ``reference`` is speculative.py's pair: ``>`` for GSI, ``≥`` for RSD.
* ``stop_below`` — a reward floor: when every candidate's reward is below it the solution
  stops (``stop_reason: low_reward``), for the proposal and the fallback alike (the
  reference stops at 0.1 in GSI, its fallback and RSD). ``None``: no floor.
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLD_ON = ("tilted", "beta_tilted", "reward")
TIE_RULES = ("ge", "gt", "reference")
# Methods whose score is GSI's: speculative.py accepts them only when score > threshold.
_STRICT_IN_REFERENCE = frozenset({"gsi", "gsi_consistent"})


def accepts(method: str, score: float, threshold: float, tie_rule: str) -> bool:
    """Whether ``score`` passes ``threshold`` under ``tie_rule`` for ``method``."""
    return bool(accepts_each(method, np.asarray(score), threshold, tie_rule))


def accepts_each(method: str, scores: np.ndarray, threshold: float, tie_rule: str) -> np.ndarray:
    """:func:`accepts` for every entry of ``scores`` (NaN never passes)."""
    strict = tie_rule == "gt" or (tie_rule == "reference" and method in _STRICT_IN_REFERENCE)
    with np.errstate(invalid="ignore"):
        return scores > threshold if strict else scores >= threshold


def below_floor(rewards: np.ndarray | None, floor: float | None) -> bool:
    """True when a floor is set and no candidate's reward reaches it (NaN counts as -inf)."""
    if floor is None or rewards is None or len(rewards) == 0:
        return False
    values = np.asarray(rewards, dtype=np.float64)
    values = np.where(np.isnan(values), -np.inf, values)
    return bool(values.max() < floor)


def beta_tilted(reward: float, log_ratio: float, beta: float) -> float:
    """β·r + log π_B − log π_S for one candidate (finite β; NaN parts count as -inf)."""
    if math.isnan(reward) or math.isnan(log_ratio):
        return -math.inf
    if beta == 0.0:
        return log_ratio
    return beta * reward + log_ratio
