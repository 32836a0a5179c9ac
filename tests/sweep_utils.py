"""Helpers for the sweep tests: run ``run.py`` as a user would, read what it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT

# small, fast jobs; results do not depend on batch_size, only timings do
TOY = ("progress=false", "limit=6", "n_small=3", "n_big=2", "batch_size=4")


def run_py(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_run_py(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def run_dirs(sweep: Path) -> list[Path]:
    return sorted(d for d in Path(sweep).iterdir() if (d / "config.yaml").exists())


def metrics_files(sweep: Path) -> list[Path]:
    return sorted(Path(sweep).glob("*/metrics.json"))


def submitted(sweep: Path) -> list[str]:
    """Job ids that submitit created folders for in this sweep dir."""
    folder = Path(sweep) / ".submitit"
    return sorted(p.name for p in folder.iterdir() if "%" not in p.name) if folder.exists() else []


def wait_for_rows(sweep: Path, n: int, proc: subprocess.Popen, timeout: float = 600) -> Path:
    """Poll until one run dir of the sweep has ``n`` result lines; return that dir."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for path in Path(sweep).glob("*/results.jsonl"):
            if len(path.read_text().splitlines()) >= n:
                return path.parent
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {n} results: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"no run reached {n} results in {timeout}s")


def descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (from /proc), breadth first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def signal_local_job(launcher: subprocess.Popen, sig: int = signal.SIGUSR2) -> int:
    """Send ``sig`` to the job process of a local submitit sweep, as the local executor does
    ``signal_delay_s`` before ``timeout_min``. Returns that process id."""
    for pid in descendants(launcher.pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"submitit.core._submit" in cmd:
            os.kill(pid, sig)
            return pid
    raise AssertionError("no running submitit job process below the launcher")


def sweep_table(stdout: str) -> list[dict[str, str]]:
    """The rows of the end-of-sweep table the launcher prints (columns by header position)."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("#  job"))
    header = lines[start]
    names = ["#", "job", "state", "requeues", "config", "log / output"]
    cols = [header.index(n) for n in names]
    rows = []
    for line in lines[start + 2:]:
        if not line.strip() or not line[0].isdigit():
            break
        cells = [line[a:b].strip() for a, b in zip(cols, cols[1:] + [len(line)])]
        rows.append(dict(zip(names, cells)))
    return rows


def check_one_failing_job(launcher: tuple[str, ...], sweep: Path) -> list[dict[str, str]]:
    """Sweep gsi and soft_bon_small with a big model that fails to load: gsi needs it,
    soft_bon_small never loads it. Check the failure is reported with its log and the
    other job's results stay; return the sweep table for launcher-specific checks."""
    not_a_model = sweep / "not_a_model"  # exists (passes validation), fails to load
    not_a_model.mkdir(parents=True)
    proc = run_py(*launcher, "method=gsi,soft_bon_small", f"model.big.path={not_a_model}",
                  f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1
    assert "1 of 2 jobs did not finish" in proc.stderr
    [ok] = metrics_files(sweep)
    assert json.loads(ok.read_text())["method"] == "soft_bon_small"
    table = sweep_table(proc.stdout)
    assert [(r["state"], "method=gsi" in r["config"].split()) for r in table] == [("failed", True), ("done", False)]
    log_path = table[0]["log / output"]
    assert log_path.endswith("_log.err") and "could not build model.big" in open(log_path).read()
    return table
