"""What a submitted job runs: one Hydra job, resumable, requeued on time-out or preemption.

submitit pickles a :class:`SweepJob` per configuration. On SIGUSR2 (the signal SLURM sends
``signal_delay_s`` before the time limit, or on preemption) submitit calls
:meth:`SweepJob.checkpoint`, which returns the same job with its requeue count raised; the
requeued job runs the pipeline again in the same directory, and the pipeline skips the
problems already in ``results.jsonl``. submitit bounds the time-outs by ``max_num_timeout``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from gsi.outputs import atomic_write_json, finished_metrics

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SweepJob:
    """A picklable callable: compose this job's config and run the task function in it."""

    hydra_context: Any
    task_function: Any
    master_config: Any
    overrides: list[str]
    job_num: int
    run_dir: str
    singleton_state: Any
    requeues: int = 0

    def __call__(self) -> dict | None:
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import JobStatus, run_job, setup_globals
        from omegaconf import open_dict

        import gsi.config

        gsi.config.register()  # resolvers are process state: the job's process needs its own
        Singleton.set_state(self.singleton_state)
        setup_globals()
        config = self.hydra_context.config_loader.load_sweep_config(self.master_config, list(self.overrides))
        with open_dict(config.hydra.job):
            config.hydra.job.id = submitit.JobEnvironment().job_id
            config.hydra.job.num = self.job_num
        if self.requeues:
            log.warning("requeued %d time(s): resuming in %s", self.requeues, self.run_dir)
        _escalate_final_timeout()
        try:
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        except _FinalTimeout as exc:
            raise submitit.core.utils.UncompletedJobError(str(exc)) from None
        except SystemExit as exc:
            if exc.code != 2:  # e.g. submitit ending this attempt after requeueing it
                raise
            raise RuntimeError("the run stopped on a config error (exit code 2): see the line above") from None
        if ret.status == JobStatus.FAILED:
            raise ret._return_value
        out = Path(ret.hydra_cfg.hydra.runtime.output_dir)
        if out.resolve() != Path(self.run_dir).resolve():
            log.warning("the job ran in %s, the launcher expected %s", out, self.run_dir)
        metrics = ret.return_value if isinstance(ret.return_value, dict) else None
        return record_requeues(out, self.requeues, metrics)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Requeue this job; its progress is in ``results.jsonl``, so nothing else to save."""
        import submitit

        again = dataclasses.replace(self, requeues=self.requeues + 1)
        return submitit.helpers.DelayedSubmission(again, *args, **kwargs)


class _FinalTimeout(BaseException):
    """submitit's "timed-out too many times", raised past the decoding loop's per-problem
    error isolation (which catches Exception) so that the job stops as timed out."""


def _escalate_final_timeout() -> None:
    """Wrap submitit's SIGUSR2 handler: its UncompletedJobError becomes a BaseException."""
    import signal

    from submitit.core.job_environment import JobEnvironment
    from submitit.core.utils import UncompletedJobError

    signum = JobEnvironment._usr_sig()
    handler = signal.getsignal(signum)
    if not callable(handler) or getattr(handler, "_gsi_wrapped", False):
        return

    def wrapped(sig, frame):
        try:
            handler(sig, frame)
        except UncompletedJobError as exc:
            raise _FinalTimeout(str(exc)) from None

    wrapped._gsi_wrapped = True  # type: ignore[attr-defined]
    signal.signal(signum, wrapped)


def record_requeues(run_dir: Path, requeues: int, metrics: dict | None) -> dict | None:
    """Add ``requeues`` to the run's ``metrics.json`` (atomically) unless it is already there."""
    on_disk = finished_metrics(run_dir)
    if on_disk is None:
        return metrics
    if on_disk.get("requeues") != requeues and (requeues or "requeues" not in on_disk):
        on_disk["requeues"] = requeues
        atomic_write_json(Path(run_dir) / "metrics.json", on_disk)
    return on_disk
