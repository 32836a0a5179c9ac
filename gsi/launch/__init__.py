"""Sweeps on SLURM (or locally) through submitit: stable run identity, filtering of finished
configurations before submission, requeue on time-out/preemption and an end-of-sweep report.

``identity`` is imported by :mod:`gsi.config` (it registers the ``${gsi.run_id:}`` resolver
used by ``hydra.run.dir`` / ``hydra.sweep.subdir``); the rest is imported only by the
launcher plugin in ``hydra_plugins/gsi_launcher`` and by submitted jobs, so that submitit
stays an optional dependency.
"""

from omegaconf import DictConfig, OmegaConf


def _resolve_run_id(*, _root_: DictConfig) -> str:
    from gsi.launch.identity import run_id

    return run_id(_root_)


def _resolve_gpus(*, _root_: DictConfig) -> int | None:
    from gsi.launch.resources import gpus_per_task

    return gpus_per_task(_root_)


for _name, _fn in (("gsi.run_id", _resolve_run_id), ("gsi.gpus_per_task", _resolve_gpus)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn, use_cache=False)
