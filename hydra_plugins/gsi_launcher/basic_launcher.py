"""Hydra's basic launcher (jobs one after another in this process), checking the sweep first.

Hydra's own runs job 0 before it composes job 1, so ``-m beta=0.5,-1,2`` ran one job and
stopped at the second. This one composes and validates every job first (the same
:func:`gsi.launch.sweep.plan_jobs` the submitit launchers use): any bad job stops the sweep
before the first runs, with one line per bad job and exit code 2; a job whose run directory
another process is writing is skipped as "running". It is the default (``conf/config.yaml``).
"""

import logging
from dataclasses import dataclass
from typing import Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus

log = logging.getLogger(__name__)


class GsiBasicLauncher(BasicLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from gsi.launch.sweep import RUNNING, plan_jobs

        planned = plan_jobs(self.hydra_context, self.config, job_overrides, initial_job_idx)
        runs: list[JobReturn] = []
        for job in planned:
            if job.state == RUNNING:
                log.warning("#%d %s: skipped, %s", job.num, job.label, job.log_path)
                runs.append(JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED,
                                      _return_value=None, working_dir=str(job.run_dir)))
                continue
            runs.extend(super().launch([job.overrides], job.num))
        return runs


@dataclass
class GsiBasicLauncherConf:
    _target_: str = "hydra_plugins.gsi_launcher.basic_launcher.GsiBasicLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="gsi_basic", node=GsiBasicLauncherConf, provider="gsi")
