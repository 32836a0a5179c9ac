"""Checks Hydra itself would trip on, made before it writes anything (a Hydra callback).

Hydra creates the run directory (and ``.hydra/``) before the task function starts, so an
output directory that is a file, lies under a file, cannot be written or sits on a full
disk surfaced as Hydra's traceback. ``hydra.callbacks.gsi_preflight`` in ``conf/config.yaml``
runs :func:`gsi.rundir.check_output_dir` first and ends with one line and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def _check(config: DictConfig, key: str) -> None:
    from gsi.config import ConfigError  # -> gsi.errors once #14 lands it
    from gsi.rundir import check_output_dir

    try:
        where = str(config.hydra.run.dir if key == "hydra.run.dir" else config.hydra.sweep.dir)
    except Exception:  # noqa: BLE001 - an unresolvable config is the pipeline's to report
        return
    if not where.strip():
        return  # an empty run dir is the validation's to report (#14)
    try:
        check_output_dir(Path(where), key)
    except ConfigError as exc:
        print(f"gsi: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


class Preflight(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "hydra.sweep.dir")
