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
"""

from __future__ import annotations

import logging
import math
import netrc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from gsi.types import ProblemResult, StepSummary

log = logging.getLogger(__name__)

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


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


# W&B's public API hosts (wandb >= 0.26 defaults to the first; `wandb login` writes netrc for it).
WANDB_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")


def logged_in() -> bool:
    """Whether W&B credentials are present (env or netrc), without asking anyone."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    base = os.environ.get("WANDB_BASE_URL")
    hosts = [urlparse(base).hostname or ""] if base else list(WANDB_HOSTS)
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    return any((auth := entries.authenticators(host)) and auth[2] for host in hosts)


def resolve_mode(requested: str) -> str:
    """``auto`` -> ``WANDB_MODE`` if set, else online when logged in, else offline.
    ``online`` without credentials becomes offline (W&B would otherwise prompt)."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    mode = requested
    if mode == "auto" and env:
        mode = {"dryrun": "offline", "run": "online"}.get(env, env)
    if mode == "auto":
        return "online" if logged_in() else "offline"
    if mode == "online" and not logged_in():
        log.warning("tracking.mode=online but no W&B credentials (WANDB_API_KEY or netrc): logging offline")
        return "offline"
    return mode


def run_name(cfg: DictConfig, with_shard: bool = True) -> str:
    """A name a person reads: method, beta, threshold (methods that reject), shard."""
    from gsi.methods import METHODS

    method = cfg.method.name
    parts = [method, f"beta={float(cfg.beta):g}"]
    if method in METHODS and METHODS[method].rejects:
        parts.append(f"u={float(cfg.threshold):g}")
    if with_shard and int(cfg.shard.count) > 1:
        parts.append(f"shard={cfg.shard.index}/{cfg.shard.count}")
    return " ".join(parts)


def sweep_group(cfg: DictConfig) -> str | None:
    """The W&B group of a multirun job: ``sweep:`` and the keys the command line sets
    (``sweep:beta,method``), so relaunching a sweep — which resumes into the same run
    directories — also lands in the same group; ``tracking.group=NAME`` names it
    explicitly. The shards of one configuration run outside a sweep share its name."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            keys = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
            keys = {k for k in keys if not k.startswith(("hydra", "tracking"))}
            return "sweep:" + ",".join(sorted(keys))
    except Exception:  # noqa: BLE001 - no Hydra context is fine
        pass
    return run_name(cfg, with_shard=False) if int(cfg.shard.count) > 1 else None


@dataclass
class _Totals:
    problems: int = 0
    correct: int = 0
    steps: int = 0
    accepted: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.problems += 1
        self.correct += int(bool(row["correct"]))
        self.steps += int(row["steps"])
        self.accepted += int(row["accepted_steps"])


class NullTracker:
    """Tracks nothing (``tracking=none``); also the interface every tracker has."""

    def __init__(self, **_: Any) -> None:
        self.totals = _Totals()

    def start(self, cfg: DictConfig, run_dir: Path, previous: Iterable[Mapping[str, Any]] = ()) -> None:
        """Begin a run; ``previous`` are the rows a resumed run already has."""
        for row in previous:
            self.totals.add(row)

    def problem(self, result: ProblemResult) -> None:
        self.totals.add(result.to_json())

    def step(self, summary: StepSummary) -> None:
        pass

    def finish(self, metrics: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> None:
        pass

    def abort(self) -> None:
        """The run failed: close the tracking run as failed."""


class WandbTracker(NullTracker):
    """Weights & Biases: one W&B run per job, finished by that job."""

    def __init__(
        self,
        project: str = "gsi",
        entity: str | None = None,
        group: str | None = None,
        name: str | None = None,
        job_type: str | None = None,
        tags: Iterable[str] = (),
        notes: str | None = None,
        mode: str = "auto",
        dir: str | None = None,  # noqa: A002 - the W&B name
        log_steps: bool = True,
        log_table: bool = True,
        init_timeout: float = 60.0,
        settings: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> None:
        super().__init__()
        self.options = dict(
            project=project, entity=entity, group=group, name=name, job_type=job_type, notes=notes
        )
        self.tags = list(tags)
        self.mode = mode
        self.dir = dir
        self.log_steps = log_steps
        self.log_table = log_table
        self.settings = {"init_timeout": float(init_timeout), "quiet": True, **dict(settings or {})}
        self.run = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, cfg: DictConfig, run_dir: Path, previous: Iterable[Mapping[str, Any]] = ()) -> None:
        super().start(cfg, run_dir, previous)
        mode = resolve_mode(self.mode)
        if mode == "disabled":
            return
        directory = Path(self.dir) if self.dir else Path(run_dir)
        kwargs = dict(
            project=self.options["project"],
            entity=self.options["entity"],
            group=self.options["group"] or sweep_group(cfg),
            name=self.options["name"] or run_name(cfg),
            job_type=self.options["job_type"] or cfg.method.name,
            notes=self.options["notes"],
            tags=self._tags(cfg),
            # nested: W&B shows it as dotted columns (method.name, model.small.path, ...) and
            # panels address it as config:method.value.name; literal dotted keys would not be.
            config=OmegaConf.to_container(cfg, resolve=True),
            dir=str(directory),
        )
        try:
            import wandb
        except ImportError:
            log.warning("W&B is off for this run: wandb is not installed (pip install -e '.[tracking]')")
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.run = self._init(wandb, mode, kwargs)
        except Exception as exc:  # noqa: BLE001 - W&B must never stop a run
            log.warning("W&B is off for this run: %s: %s", type(exc).__name__, exc)
            return
        self._guard(self._define_metrics)

    def _init(self, wandb, mode: str, kwargs: dict):
        def init(m: str):
            settings = wandb.Settings(**self.settings)
            return wandb.init(mode=m, reinit="create_new", settings=settings, **kwargs)

        try:
            return init(mode)
        except Exception as exc:  # noqa: BLE001
            if mode != "online":
                raise
            log.warning("W&B online start failed (%s); logging offline, upload later with `wandb sync`", exc)
            return init("offline")

    def _tags(self, cfg: DictConfig) -> list[str]:
        auto = [cfg.method.name, cfg.dataset.get("name"), cfg.model.small.get("name")]
        if cfg.model.get("big") is not None:
            auto.append(cfg.model.big.get("name"))
        tags = [str(t)[:64] for t in auto + self.tags if t]
        return list(dict.fromkeys(tags))

    def _define_metrics(self) -> None:
        self.run.define_metric(PROBLEM_X)
        self.run.define_metric("problem/*", step_metric=PROBLEM_X)
        self.run.define_metric(STEP_X)
        self.run.define_metric("step/*", step_metric=STEP_X)

    def _guard(self, fn, *args) -> None:
        """Call W&B; on failure log once, close the W&B run and stop tracking."""
        if self.run is None:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - W&B must never stop a run
            log.warning(
                "W&B failed, tracking stops for this run (results are still written): %s: %s",
                type(exc).__name__,
                exc,
            )
            run, self.run = self.run, None
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001
                pass

    def _log(self, data: Mapping[str, Any]) -> None:
        self.run.log({k: v for k, v in data.items() if _finite(v) is not None})

    # ------------------------------------------------------------------ events
    def problem(self, result: ProblemResult) -> None:
        super().problem(result)
        t = self.totals
        self._guard(
            self._log,
            {
                PROBLEM_X: t.problems,
                "problem/running_accuracy": t.correct / t.problems,
                "problem/running_acceptance_rate": t.accepted / t.steps if t.steps else None,
                "problem/correct": int(result.correct),
                "problem/final_reward": result.final_reward,
                "problem/latency_s": result.latency_s,
                "problem/steps": result.steps,
                "problem/tokens_small": result.tokens_small,
                "problem/tokens_big": result.tokens_big,
            },
        )

    def step(self, summary: StepSummary) -> None:
        if self.log_steps:
            self._guard(
                self._log,
                {
                    STEP_X: summary.step,
                    "step/acceptance_rate": summary.acceptance_rate,
                    "step/mean_reward": summary.mean_reward,
                    "step/active": summary.active,
                },
            )

    def finish(self, metrics: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> None:
        self._guard(self._finish, metrics, rows)

    def _finish(self, metrics: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> None:
        import wandb

        self.run.summary.update({k: v for k, v in metrics.items() if _finite(v) is not None})
        if self.log_table:
            data = [[_finite(row.get(c)) for c in TABLE_COLUMNS] for row in rows]
            self.run.log({TABLE_KEY: wandb.Table(columns=list(TABLE_COLUMNS), data=data)})
        run, self.run = self.run, None
        run.finish(exit_code=0)

    def abort(self) -> None:
        if self.run is not None:
            self._guard(self.run.finish, 1)
            self.run = None


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
