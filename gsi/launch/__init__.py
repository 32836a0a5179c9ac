"""Sweeps on SLURM (or locally) through submitit: stable run identity, filtering of finished
configurations before submission, requeue on time-out/preemption and an end-of-sweep report.

The ``${gsi.run_id:}`` and ``${gsi.gpus_per_task:}`` resolvers used by ``hydra.run.dir`` /
``hydra.sweep.subdir`` and the launcher configs are registered by :func:`gsi.config.register`;
the rest is imported only by the launcher plugin in ``hydra_plugins/gsi_launcher`` and by
submitted jobs, so that submitit stays an optional dependency.
"""
