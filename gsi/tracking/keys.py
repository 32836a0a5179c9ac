"""The names the tracker logs under (the dashboards and tests rely on them).

``problem/*`` per finished problem against ``problem/index``, ``step/*`` per iteration of
the decoding loop against ``step/index``, the run's ``metrics.json`` as the summary, and the
per-problem results as the table ``results``.
"""

from __future__ import annotations

import math
from typing import Any


PROBLEM_X = "problem/index"
PROBLEM_KEYS = (
    "problem/running_accuracy",
    "problem/running_acceptance_rate",
    "problem/correct",
    "problem/final_reward",
    "problem/latency_s",
    "problem/steps",
    "problem/tokens_small",
    "problem/tokens_big",
)
STEP_X = "step/index"
STEP_KEYS = ("step/acceptance_rate", "step/mean_reward", "step/active")
TABLE_KEY = "results"
TABLE_COLUMNS = (
    "problem_id",
    "correct",
    "final_reward",
    "steps",
    "accepted_steps",
    "latency_s",
    "tokens_small",
    "tokens_big",
    "stop_reason",
    "answer",
    "reference",
)


def finite(value: Any) -> Any:
    """W&B stores no NaN/inf: they become None (and are then left out)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
