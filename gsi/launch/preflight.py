"""Checks Hydra itself would trip on, made before it writes anything (a Hydra callback).

Hydra creates the run directory (and ``.hydra/``) before the task function starts, so an
output directory that is a file, lies under a file, cannot be written or sits on a full
disk surfaced as Hydra's traceback. ``hydra.callbacks.gsi_preflight`` in ``conf/config.yaml``
runs :func:`gsi.rundir.check_output_dir` first and ends with one line and exit code 2. A
single run also meets the pipeline's other refusals here (another configuration's
directory, one another process is writing) before Hydra rewrites that directory's
``.hydra/``; the pipeline checks them again for callers that do not go through Hydra.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def _check(config: DictConfig, key: str) -> None:
    from gsi.errors import ConfigError
    from gsi.rundir import RunDirError, busy, check_output_dir, is_locked

    try:
        where = str(config.hydra.run.dir if key == "hydra.run.dir" else config.hydra.sweep.dir)
    except Exception:  # noqa: BLE001 - an unresolvable config is the pipeline's to report
        return
    if not where.strip():
        return  # an empty run dir is the validation's to report (#14)
    try:
        check_output_dir(Path(where), key)
        if key == "hydra.run.dir" and Path(where).is_dir():
            if is_locked(Path(where)):
                raise busy(Path(where))
            _same_config(Path(where), config)
    except RunDirError as exc:
        print(f"gsi: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except ConfigError as exc:
        print(f"gsi: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _same_config(run_dir: Path, config: DictConfig) -> None:
    from gsi.errors import ConfigError
    from gsi.rundir import check_identity

    try:
        check_identity(run_dir, config)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - a config that does not resolve is the pipeline's to report
        return


class Preflight(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "hydra.sweep.dir")
