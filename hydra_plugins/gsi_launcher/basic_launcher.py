"""Hydra's basic launcher (jobs one after another in this process), checking the sweep first.

Hydra's own runs job 0 before it composes job 1, so ``-m beta=0.5,-1,2`` ran one job and
stopped at the second. This one composes and validates every job first (the same
:func:`gsi.launch.sweep.plan_jobs` the submitit launchers use): any bad job stops the sweep
before the first runs, with one line per bad job and exit code 2; a job whose run directory
another process is writing is skipped as "running". A job that ends with an exit code (every
problem failed, a full disk) does not stop the jobs after it: the sweep ends with one line
counting them and the first such code. It is the default (``conf/config.yaml``).
"""

import logging
import sys
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
        stopped: list[tuple[int, int]] = []  # (job number, exit code)
        for job in planned:
            if job.state == RUNNING:
                log.warning("#%d %s: skipped, %s", job.num, job.label, job.log_path)
                runs.append(JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED,
                                      _return_value=None, working_dir=str(job.run_dir)))
                continue
            try:
                runs.extend(super().launch([job.overrides], job.num))
            except SystemExit as exc:  # its one line is printed; the next jobs still run
                code = exc.code if isinstance(exc.code, int) else 1
                if code in (130, 143):
                    raise  # interrupted: stop the sweep, each run resumes on relaunch
                stopped.append((job.num, code))
        if stopped:
            print(f"gsi: {len(stopped)} of {len(planned)} jobs did not finish "
                  f"(#{', #'.join(str(n) for n, _ in stopped)}); the others' results are kept. "
                  "Relaunch the same command to retry only those.", file=sys.stderr)
            raise SystemExit(stopped[0][1])
        return runs


@dataclass
class GsiBasicLauncherConf:
    _target_: str = "hydra_plugins.gsi_launcher.basic_launcher.GsiBasicLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="gsi_basic", node=GsiBasicLauncherConf, provider="gsi")
