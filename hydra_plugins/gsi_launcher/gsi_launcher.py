"""Hydra launchers for gsi sweeps: the submitit plugin's launchers plus gsi's sweep logic.

Hydra only instantiates launcher classes that live in the ``hydra_plugins`` namespace
package, so these thin subclasses live here (next to ``run.py``, which puts this folder on
``sys.path``); the logic is in :mod:`gsi.launch.sweep`. Jobs are submitted as
:class:`gsi.launch.job.SweepJob` objects, so a job's process needs only the ``gsi`` package.
Presets: ``conf/hydra/launcher/{local,slurm}.yaml``.
"""

from dataclasses import dataclass
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher


class GsiLocalLauncher(LocalLauncher):
    """submitit's local executor (subprocesses on this machine), with gsi's sweep logic."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from gsi.launch.sweep import launch_sweep

        return launch_sweep(self, job_overrides, initial_job_idx)


class GsiSlurmLauncher(SlurmLauncher):
    """submitit's SLURM executor (one job array per sweep), with gsi's sweep logic."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from gsi.launch.sweep import launch_sweep

        return launch_sweep(self, job_overrides, initial_job_idx)


@dataclass
class GsiLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.gsi_launcher.gsi_launcher.GsiLocalLauncher"
    # the local executor also sends SIGUSR2 signal_delay_s before timeout_min and requeues
    signal_delay_s: int = 120
    max_num_timeout: int = 3


@dataclass
class GsiSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.gsi_launcher.gsi_launcher.GsiSlurmLauncher"
    max_num_timeout: int = 3


def _register(cs: Any = ConfigStore.instance()) -> None:
    cs.store(group="hydra/launcher", name="gsi_local_schema", node=GsiLocalQueueConf(), provider="gsi")
    cs.store(group="hydra/launcher", name="gsi_slurm_schema", node=GsiSlurmQueueConf(), provider="gsi")


_register()
