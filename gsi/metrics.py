"""Per-run metrics of GSI.md from per-problem results and the loop's call timings."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from gsi.types import CallStats

METRIC_ORDER = [
    "accuracy",
    "mean_final_reward",
    "acceptance_rate",
    "ess_mean",
    "log_ratio_mean",
    "steps_per_problem",
    "latency_mean_s",
    "latency_p50_s",
    "latency_p95_s",
    "wall_time_s",
    "problems_per_s",
    "tokens_small",
    "tokens_big",
    "time_small_s",
    "time_big_s",
    "time_reward_s",
    "overhead_fraction",
    "num_problems",
    "num_errors",
]


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def compute_metrics(rows: Iterable[dict[str, Any]], stats: CallStats, wall_time_s: float, new_problems: int) -> dict:
    """Quality metrics over all ``rows``; timing metrics over this invocation only.

    ``wall_time_s`` and the ``time_*`` figures cover the work done in this process
    (``new_problems`` problems); on a resumed run the earlier problems' latencies are
    still in the latency percentiles.
    """
    rows = list(rows)
    steps = sum(r["steps"] for r in rows)
    latencies = [r["latency_s"] for r in rows]
    details = [st for r in rows for st in r.get("steps_detail") or []]
    inside = stats.time_small_s + stats.time_big_s + stats.time_reward_s
    metrics = {
        "accuracy": _mean([float(r["correct"]) for r in rows]),
        "mean_final_reward": _mean([r["final_reward"] for r in rows]),
        "acceptance_rate": (sum(r["accepted_steps"] for r in rows) / steps) if steps else None,
        # importance diagnostics of the proposals (None for methods without pi_B scores)
        "ess_mean": _mean([st.get("ess") for st in details]),
        "log_ratio_mean": _mean([st.get("log_ratio") for st in details]),
        "steps_per_problem": steps / len(rows) if rows else None,
        "latency_mean_s": _mean(latencies),
        "latency_p50_s": float(np.percentile(latencies, 50)) if rows else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if rows else None,
        "wall_time_s": wall_time_s,
        "problems_per_s": new_problems / wall_time_s if wall_time_s > 0 else None,
        "tokens_small": int(sum(r["tokens_small"] for r in rows)),
        "tokens_big": int(sum(r["tokens_big"] for r in rows)),
        "time_small_s": stats.time_small_s,
        "time_big_s": stats.time_big_s,
        "time_reward_s": stats.time_reward_s,
        "overhead_fraction": max(0.0, 1.0 - inside / wall_time_s) if wall_time_s > 0 and new_problems else None,
        "num_problems": len(rows),
        "num_errors": sum(1 for r in rows if r["stop_reason"] == "error"),
        "new_problems": new_problems,
        "decoding_steps": stats.steps,
    }
    for name in sorted({k for r in rows for k in r.get("correct_by") or {}}):  # dataset.grader=a+b
        metrics[f"accuracy_{name}"] = _mean([float((r.get("correct_by") or {}).get(name, False)) for r in rows])
    return metrics


def format_summary(metrics: dict, title: str) -> str:
    """A two-column table a person reads at the end of a run."""
    lines = [title, "-" * max(len(title), 40)]
    for key in METRIC_ORDER:
        value = metrics.get(key)
        if isinstance(value, float):
            text = f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
        else:
            text = "n/a" if value is None else str(value)
        lines.append(f"{key:<20} {text:>12}")
    return "\n".join(lines)


def combine_metrics(rows: Iterable[dict[str, Any]], parts: list[dict]) -> dict:
    """Metrics of several runs of one configuration taken together (its shards, or its
    requeued attempts): quality metrics from the united ``rows``; times, problem counts
    and requeues summed over the parts' ``metrics.json`` (total compute, not elapsed)."""

    def total(key: str) -> float:
        return sum(float(m.get(key) or 0.0) for m in parts)

    stats = CallStats(
        time_small_s=total("time_small_s"),
        time_big_s=total("time_big_s"),
        time_reward_s=total("time_reward_s"),
        steps=int(total("decoding_steps")),
    )
    metrics = compute_metrics(rows, stats, total("wall_time_s"), int(total("new_problems")))
    for key in ("method", "beta", "threshold"):
        if parts and key in parts[0]:
            metrics[key] = parts[0][key]
    metrics["requeues"] = int(total("requeues"))
    return metrics
