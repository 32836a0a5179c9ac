"""The launcher side of a sweep: check every job, drop finished ones, submit the rest, report.

Called by the Hydra launcher plugins in ``hydra_plugins/gsi_launcher`` (subclasses of the
submitit plugin's launchers), in the process where ``python run.py -m ...`` runs:

1. compose every job's config and validate it; any config error stops the sweep with one
   line per bad job and exit code 2 **before anything is submitted**;
2. compute every job's run directory (its identity, ``gsi.launch.identity``) and check it
   (writable, holding this configuration if any); a job whose directory holds a finished
   run is not submitted, nor one whose directory another process is writing ("running"),
   nor a second job with the same identity in one sweep;
3. submit the remaining jobs as one array (``executor.batch()``); a partly finished run
   resumes per problem inside its job;
4. wait for all, print one table (job, state, config, log or output) and exit with 1 if any
   job failed or timed out. Jobs are independent: one failure never touches other runs.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from gsi.outputs import finished_metrics

log = logging.getLogger(__name__)

SUBMIT, FINISHED, DUPLICATE, RUNNING = "submit", "finished earlier", "duplicate", "running"


@dataclasses.dataclass
class PlannedJob:
    num: int
    overrides: list[str]
    label: str
    run_dir: Path
    state: str = SUBMIT
    metrics: dict | None = None
    job: Any = None  # the submitit job
    log_path: str = ""
    error: BaseException | None = None


def _label(overrides: Sequence[str]) -> str:
    from hydra.core.utils import filter_overrides

    return " ".join(filter_overrides(list(overrides))) or "(defaults)"


def plan_jobs(hydra_context: Any, master_config: Any, job_overrides: Sequence[Sequence[str]],
              initial_job_idx: int) -> list[PlannedJob]:
    """Compose and validate every job; raise SystemExit(2) listing every bad one."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from gsi.config import ConfigError, validate
    from gsi.launch.identity import identity, identity_diff, result_config
    from gsi.rundir import check_identity, check_output_dir, holder, is_locked

    planned: list[PlannedJob] = []
    errors: list[str] = []
    first_in_sweep: dict[Path, int] = {}
    identities: dict[Path, dict] = {}
    for k, overrides in enumerate(job_overrides):
        num, label = initial_job_idx + k, _label(overrides)
        cfg = hydra_context.config_loader.load_sweep_config(master_config, list(overrides))
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = num
        HydraConfig.instance().set_config(cfg)
        try:
            validate(cfg)
            result_config(cfg)  # resolves every interpolation of the job's config
            run_dir = (Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)).absolute()
            check_output_dir(run_dir, "hydra.sweep.dir")
            check_identity(run_dir, cfg)
            mine = identity(cfg)
            diff = identity_diff(identities[run_dir], mine) if run_dir in identities else []
            if diff:
                raise ConfigError(f"it would write {run_dir} as job #{first_in_sweep[run_dir]} does, with another "
                                  f"configuration ({diff[0]}): keep ${{gsi.run_id:}} in hydra.sweep.subdir")
            identities.setdefault(run_dir, mine)
        except (ConfigError, OmegaConfBaseException, ValueError) as exc:
            errors.append(f"gsi: config error in job #{num} ({label}): {str(exc).splitlines()[0]}")
            continue
        job = PlannedJob(num, list(overrides), label, run_dir)
        if run_dir in first_in_sweep:
            job.state, job.log_path = DUPLICATE, f"same config as job #{first_in_sweep[run_dir]}"
        else:
            first_in_sweep[run_dir] = num
            job.metrics = finished_metrics(run_dir)
            if is_locked(run_dir):
                job.state, job.log_path, job.metrics = RUNNING, f"being written by {holder(run_dir)}", None
            elif job.metrics is not None:
                job.state = FINISHED
        planned.append(job)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"gsi: {len(errors)} of {len(job_overrides)} jobs have config errors: nothing was submitted or run",
              file=sys.stderr)
        raise SystemExit(2)
    return planned


def make_executor(cluster: str, params: dict[str, Any]) -> Any:
    """A submitit executor from the launcher config, as the submitit plugin builds it."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    params = dict(params)
    params.pop("_target_", None)
    folder = params.pop("submitit_folder")
    max_num_timeout = params.pop("max_num_timeout", 0)
    local_signal_delay = params.pop("signal_delay_s", None) if cluster == "local" else None
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **{f"{cluster}_max_num_timeout": max_num_timeout})
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in generic else f"{cluster}_{k}": v for k, v in params.items()})
    if local_signal_delay is not None:  # the local executor takes it, the AutoExecutor does not pass it
        executor._executor.update_parameters(signal_delay_s=int(local_signal_delay))
    return executor


def _outcome(job: PlannedJob) -> None:
    """Wait for a submitted job and classify it: done, timed out or failed."""
    try:
        job.metrics = job.job.result()
        job.state = "done"
        return
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the others
        job.error = exc
    try:
        slurm_state = str(job.job.state)
    except Exception:  # noqa: BLE001
        slurm_state = "UNKNOWN"
    text = str(job.error)
    if "timed-out" in text or slurm_state.startswith("TIMEOUT"):
        job.state = "timed out"
    elif slurm_state.startswith("CANCELLED"):
        job.state = "cancelled"
    else:
        job.state = "failed"
    job.log_path = str(job.job.paths.stderr)


def format_table(jobs: Sequence[PlannedJob]) -> str:
    header = ("#", "job", "state", "requeues", "config", "log / output")
    rows = []
    for j in jobs:
        job_id = j.job.job_id if j.job is not None else "-"
        requeues = (j.metrics or {}).get("requeues", "")
        where = j.log_path or str(j.run_dir)
        rows.append((str(j.num), str(job_id), j.state, str(requeues), j.label, where))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in [header, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def launch_sweep(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """The whole launcher-side flow for one batch of jobs; returns Hydra JobReturns."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobReturn, JobStatus

    from gsi.launch.job import SweepJob

    config = launcher.config
    planned = plan_jobs(launcher.hydra_context, config, job_overrides, initial_job_idx)
    todo = [j for j in planned if j.state == SUBMIT]
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    finished = sum(j.state == FINISHED for j in planned)
    running = sum(j.state == RUNNING for j in planned)
    log.info("sweep of %d jobs in %s: %d to submit, %d finished earlier, %d running, %d duplicate",
             len(planned), sweep_dir, len(todo), finished, running, len(planned) - len(todo) - finished - running)
    if todo:
        executor = make_executor(launcher._EXECUTOR, launcher.params)
        state = Singleton.get_state()
        with executor.batch():
            for j in todo:
                j.job = executor.submit(SweepJob(launcher.hydra_context, launcher.task_function, config,
                                                 j.overrides, j.num, str(j.run_dir), state))
        for j in todo:
            log.info("submitted #%d as %s: %s -> %s", j.num, j.job.job_id, j.label, j.run_dir)
        for j in todo:
            _outcome(j)
    print(format_table(planned))
    bad = [j for j in planned if j.error is not None]
    if bad:
        print(f"gsi: {len(bad)} of {len(planned)} jobs did not finish; the others' results are kept. "
              "Relaunch the same command to retry only those.", file=sys.stderr)
        raise SystemExit(1)
    return [
        JobReturn(overrides=j.overrides, status=JobStatus.COMPLETED, _return_value=j.metrics,
                  working_dir=str(j.run_dir))
        for j in planned
    ]
