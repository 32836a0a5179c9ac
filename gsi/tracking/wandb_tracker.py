"""Weights & Biases as a view of the run directory: every call guarded, ``wandb`` imported
only when a run starts; a failure is logged once and the run goes on without W&B."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from gsi.tracking.base import NullTracker
from gsi.tracking.keys import PROBLEM_X, STEP_X, TABLE_COLUMNS, TABLE_KEY, finite as _finite
from gsi.tracking.mode import resolve_mode
from gsi.tracking.naming import run_name, sweep_group
from gsi.types import ProblemResult, StepSummary

log = logging.getLogger(__name__)


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
