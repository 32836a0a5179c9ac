"""Injected faults: a run killed with SIGKILL resumes to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gsi.pipeline import run
from tests.helpers import ROOT, assert_same_results, without_timing

pytestmark = pytest.mark.e2e  # every test starts run.py or a fresh interpreter

ARGS = ["method=gsi", "limit=24", "batch_size=2", "progress=false", "tracking=none"]


def rows_without_timing(path):
    rows = [without_timing(json.loads(line)) for line in path.read_text().splitlines()
            if line.strip()]
    return {r["problem_id"]: r for r in rows}, len(rows)


def test_kill_9_mid_run_then_rerun_loses_and_duplicates_nothing(compose, tmp_path):
    ref_dir, killed = tmp_path / "ref", tmp_path / "killed"
    run(compose(*ARGS), ref_dir)
    reference, _ = rows_without_timing(ref_dir / "results.jsonl")

    cmd = [sys.executable, str(ROOT / "run.py"), *ARGS, f"hydra.run.dir={killed}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    results = killed / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial, _ = rows_without_timing(results)
    assert 4 <= len(partial) < 24

    metrics = run(compose(*ARGS), killed)
    resumed, lines = rows_without_timing(results)
    assert lines == 24
    assert_same_results(resumed, reference)
    assert metrics["num_problems"] == 24 and metrics["new_problems"] == 24 - len(partial)


def test_unwritable_output_directory_fails_fast_with_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # Hydra makes the run dir itself; point the pipeline at an impossible one through it
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = (
        "import sys; from hydra import compose, initialize_config_dir; import gsi.config, gsi.pipeline as p\n"
        "gsi.config.register()\n"
        f"with initialize_config_dir(config_dir={str(ROOT / 'conf')!r}, version_base='1.3'):\n"
        "    cfg = compose('config', overrides=['tracking=none'])\n"
        f"p.run(cfg, {str(blocker / 'run')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not writable" in proc.stderr and "Traceback" not in proc.stderr


def test_full_disk_mid_run_stops_with_one_line_and_a_rerun_resumes(compose, tmp_path):
    """The kernel refuses to let results.jsonl grow past 6 KB (RLIMIT_FSIZE, which fails
    writes with EFBIG as a full disk fails them with ENOSPC): the run stops with one line
    and exit code 3, keeps what it wrote, and the same command later completes it."""
    import resource

    ref_dir, full = tmp_path / "ref", tmp_path / "full"
    run(compose(*ARGS), ref_dir)
    reference, _ = rows_without_timing(ref_dir / "results.jsonl")

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (6_000, 6_000))

    cmd = [sys.executable, str(ROOT / "run.py"), *ARGS, f"hydra.run.dir={full}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=limit_file_size,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "File too large" in err[0] and "run the same command again to resume" in err[0]
    partial, _ = rows_without_timing_tolerant(full / "results.jsonl")
    assert 1 <= len(partial) < 24
    assert not (full / "metrics.json").exists()

    metrics = run(compose(*ARGS), full)
    resumed, lines = rows_without_timing(full / "results.jsonl")
    assert lines == 24 and metrics["num_problems"] == 24
    assert_same_results(resumed, reference)


def rows_without_timing_tolerant(path):
    """Rows of a results file whose last line may be torn."""
    from gsi.outputs import read_results

    rows = [without_timing(r) for r in read_results(path)]
    return {r["problem_id"]: r for r in rows}, len(rows)
