"""Confidence intervals over problems: percentile bootstrap, seeded (reproducible)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    vals = [r.get(key) for r in rows]
    return np.array([float(v) for v in vals if v is not None and math.isfinite(float(v))], dtype=np.float64)


def bootstrap_mean(values: np.ndarray, seed: int = 0) -> tuple[float | None, float | None]:
    """95 % percentile-bootstrap interval of the mean."""
    if len(values) == 0:
        return None, None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(RESAMPLES, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(lo), float(hi)


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, seed: int = 0) -> tuple[float | None, float | None]:
    """95 % interval of sum(num)/sum(den), resampling problems (e.g. acceptance rate)."""
    if len(num) == 0 or den.sum() == 0:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(RESAMPLES, len(num)))
    d = den[idx].sum(axis=1)
    ratios = np.where(d > 0, num[idx].sum(axis=1) / np.maximum(d, 1), np.nan)
    lo, hi = np.nanquantile(ratios, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(lo), float(hi)


def intervals(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float | None, float | None]]:
    """CIs of the per-problem metrics of metrics.json, keyed by metric name."""
    steps = np.array([float(r["steps"]) for r in rows])
    accepted = np.array([float(r["accepted_steps"]) for r in rows])
    return {
        "accuracy": bootstrap_mean(np.array([float(bool(r["correct"])) for r in rows])),
        "acceptance_rate": bootstrap_ratio(accepted, steps),
        "mean_final_reward": bootstrap_mean(_values(rows, "final_reward")),
        "latency_mean_s": bootstrap_mean(_values(rows, "latency_s")),
    }
