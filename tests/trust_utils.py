"""Shared pieces of the fault-injection tests (``tests/test_trust.py``,
``tests/test_trust_outputs.py``): the configuration they run, and the checks of a refusal
(an exit code, one line, no traceback). Their fixtures (``finished``: one finished toy run;
``run_dir``: a copy of it per test; ``restore_writable``) are in ``tests/conftest.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gsi.pipeline import run
from tests.helpers import CONF, without_timing

ARGS = ("method=gsi", "limit=6", "batch_size=2", "tracking=none", "progress=false")
LONG = ("method=gsi", "limit=24", "batch_size=2", "tracking=none", "progress=false")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=[*ARGS, *overrides])


def rows(path: Path) -> dict[str, dict]:
    out = {}
    for line in (path / "results.jsonl").read_text().splitlines():
        if line.strip():
            row = without_timing(json.loads(line))
            out[row["problem_id"]] = row
    return out


def refused(capsys, code: int, *overrides: str, where: Path) -> str:
    """Run in ``where``, expect SystemExit(code) and one line on stderr; return that line."""
    with pytest.raises(SystemExit) as exc:
        run(compose(*overrides), where)
    assert exc.value.code == code
    return one_line(capsys.readouterr().err)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def last_line(stderr: str) -> str:
    """The final line of a run.py's stderr (Hydra's and tqdm's chatter can come before)."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def unwritable(path: Path) -> None:
    """Make ``path`` refuse writes even for root (``chattr +i``), or skip."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("running as root and chattr +i is not available here")
