"""Experiment tracking: the pipeline reports a run's progress to a tracker.

``conf/tracking/`` picks the tracker with ``_target_``: :class:`WandbTracker` (the
default) or :class:`NullTracker`. W&B is a view of the run directory, never its source
of truth: every W&B call is guarded, and a failure (no network, a full disk, a bad
setting) is logged once and the run goes on without W&B. ``wandb`` is imported only
when a W&B run starts.

Logged keys (the names the dashboards and tests rely on):
``problem/*`` per finished problem against ``problem/index``, ``step/*`` per iteration
of the decoding loop against ``step/index``, the run's ``metrics.json`` as the summary,
and the per-problem results as the table ``results``.

The package: ``keys`` (logged names), ``mode`` (online/offline), ``naming`` (run name and
group), ``base`` (the interface, :class:`NullTracker`), ``wandb_tracker`` (:class:`WandbTracker`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig

from gsi.tracking.base import NullTracker
from gsi.tracking.keys import PROBLEM_KEYS, PROBLEM_X, STEP_KEYS, STEP_X, TABLE_COLUMNS, TABLE_KEY
from gsi.tracking.mode import WANDB_HOSTS, logged_in, resolve_mode
from gsi.tracking.naming import run_name, sweep_group
from gsi.tracking.wandb_tracker import WandbTracker

__all__ = [
    "NullTracker", "WandbTracker", "build_tracker", "logged_in", "resolve_mode", "run_name", "sweep_group",
    "PROBLEM_KEYS", "PROBLEM_X", "STEP_KEYS", "STEP_X", "TABLE_COLUMNS", "TABLE_KEY", "WANDB_HOSTS",
]

log = logging.getLogger(__name__)


def build_tracker(cfg: DictConfig, run_dir: Path, previous: Iterable[Mapping[str, Any]] = ()) -> NullTracker:
    """The configured tracker (``cfg.tracking._target_``), started; never raises for W&B."""
    node = cfg.get("tracking")
    tracker: NullTracker = NullTracker()
    if node is not None:
        from hydra.utils import instantiate

        try:
            tracker = instantiate(node, _convert_="all")
        except Exception as exc:  # noqa: BLE001 - a tracker must never stop a run
            log.warning("could not build the tracker %s (%s); tracking is off", node.get("_target_"), exc)
    tracker.start(cfg, run_dir, previous)
    return tracker
