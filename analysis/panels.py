"""The sweep panels, defined once: drawn as PNGs by the report and pushed to W&B.

A panel plots a metric of each configuration (a run's ``metrics.json``, the W&B
summary) against a config value or another metric, one series per method.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    name: str  # file stem of the PNG
    title: str
    x: str  # a config key (``beta``) or, with ``x_is_metric``, a metric
    y: str  # a metric of metrics.json
    x_label: str
    y_label: str
    x_is_metric: bool = False
    rejecting_only: bool = False  # only methods with a threshold (gsi, rsd)
    pareto: bool = False  # mark the front of (low x, high y)


SERIES = "method.name"  # one line per method (and per other swept value)

PANELS: tuple[Panel, ...] = (
    Panel("accuracy_vs_beta", "Accuracy vs β", "beta", "accuracy", "β", "accuracy"),
    Panel(
        "acceptance_vs_threshold",
        "Acceptance rate vs threshold",
        "threshold",
        "acceptance_rate",
        "threshold u",
        "acceptance rate (small-model steps)",
        rejecting_only=True,
    ),
    Panel(
        "accuracy_vs_latency",
        "Accuracy vs latency",
        "latency_mean_s",
        "accuracy",
        "mean latency per problem (s)",
        "accuracy",
        x_is_metric=True,
        pareto=True,
    ),
    Panel("final_reward_vs_beta", "Final reward vs β", "beta", "mean_final_reward", "β", "mean final reward"),
)

# Per-run curves (W&B history), logged by gsi.tracking against these x-axes.
CURVES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Running accuracy", "problem/index", ("problem/running_accuracy",)),
    ("Running acceptance rate", "problem/index", ("problem/running_acceptance_rate",)),
    ("Final reward per problem", "problem/index", ("problem/final_reward",)),
    ("Latency per problem", "problem/index", ("problem/latency_s",)),
    ("Tokens per problem", "problem/index", ("problem/tokens_small", "problem/tokens_big")),
    ("Acceptance rate per decoding step", "step/index", ("step/acceptance_rate",)),
    ("Mean chosen reward per decoding step", "step/index", ("step/mean_reward",)),
)

TOKENS = ("tokens_small", "tokens_big")
