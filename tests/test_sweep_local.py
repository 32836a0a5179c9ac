"""Sweeps through ``hydra/launcher=local`` (submitit's local executor): the launcher logic of
the SLURM path — filtering before submission, config errors before submission, failure
report and exit code, requeue bounded by ``max_num_timeout`` — without a cluster."""

from __future__ import annotations

import json

import pytest

from tests.sweep_utils import (TOY, check_one_failing_job, metrics_files, read_rows, run_py, signal_local_job,
                               start_run_py, submitted, sweep_table)

pytest.importorskip("submitit", reason="the `slurm` extra (submitit, hydra-submitit-launcher) is not installed")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed")

pytestmark = pytest.mark.e2e  # every test launches run.py sweeps

LOCAL = ("-m", "hydra/launcher=local", *TOY)


def test_sweep_runs_each_config_once_and_a_relaunch_submits_nothing(tmp_path):
    proc = run_py(*LOCAL, "beta=0.5,2", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    found = metrics_files(tmp_path)
    assert len(found) == 2 and len(submitted(tmp_path)) == 2
    assert {json.loads(p.read_text())["beta"] for p in found} == {0.5, 2.0}
    assert all(json.loads(p.read_text())["requeues"] == 0 for p in found)
    assert [r["state"] for r in sweep_table(proc.stdout)] == ["done", "done"]
    before = {p: p.read_text() for p in found}
    # same sweep again, plus one new value and one duplicate spelling of beta=2
    again = run_py(*LOCAL, "beta=0.5,2,2.0,3", f"hydra.sweep.dir={tmp_path}")
    assert again.returncode == 0, again.stderr
    assert "1 to submit" in again.stdout and len(submitted(tmp_path)) == 3
    states = [r["state"] for r in sweep_table(again.stdout)]
    assert states == ["finished earlier", "finished earlier", "duplicate", "done"]
    assert len(metrics_files(tmp_path)) == 3
    assert all(p.read_text() == text for p, text in before.items())  # finished runs untouched


def test_config_errors_stop_the_sweep_before_anything_is_submitted(tmp_path):
    proc = run_py(*LOCAL, "beta=1,-1", "n_small=2,0", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 4 and "Traceback" not in proc.stderr  # 3 bad jobs + the summary line
    assert sum("beta=-1" in line for line in lines) == 2 and sum("n_small=0" in line for line in lines) == 2
    assert "nothing was submitted" in lines[-1]
    assert submitted(tmp_path) == [] and metrics_files(tmp_path) == []


def test_a_failing_job_is_reported_and_the_others_keep_their_results(tmp_path):
    check_one_failing_job(LOCAL, tmp_path)


def test_time_out_requeues_and_resumes_bounded_by_max_num_timeout(tmp_path):
    """SIGUSR2 is what the executor sends ``signal_delay_s`` before ``timeout_min`` (submitit
    counts it as a time-out when ``timeout_min`` <= 10); we send it once rows exist. With
    ``max_num_timeout=0`` the job is reported timed out with its results kept, and the
    relaunch (which allows requeues) resumes it and is requeued once more without losing or
    repeating a problem."""
    from gsi.data import ToyArithmetic

    slow = (*LOCAL, "limit=40", "batch_size=1", "hydra.launcher.timeout_min=5",
            "hydra.launcher.signal_delay_s=30", f"hydra.sweep.dir={tmp_path}")
    proc = start_run_py(*slow, "hydra.launcher.max_num_timeout=0")
    run_dir = _wait_rows(tmp_path, 2, proc)
    signal_local_job(proc)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 1, err
    assert sweep_table(out)[0]["state"] == "timed out" and "1 of 1 jobs did not finish" in err
    partial = read_rows(run_dir / "results.jsonl")
    assert 2 <= len(partial) < 40 and not (run_dir / "metrics.json").exists()

    proc = start_run_py(*slow, "hydra.launcher.max_num_timeout=2")
    _wait_rows(tmp_path, len(partial) + 2, proc)
    signal_local_job(proc)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    rows = read_rows(run_dir / "results.jsonl")
    ids = [r["problem_id"] for r in rows]
    expected = {p.id for p in ToyArithmetic().load()[:40]}
    assert len(ids) == len(set(ids)) == 40 and set(ids) == expected
    assert rows[: len(partial)] == partial  # the first attempt's results were kept as they were
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["requeues"] == 1 and metrics["num_problems"] == 40


def _wait_rows(sweep, n, proc):
    from tests.sweep_utils import wait_for_rows

    return wait_for_rows(sweep, n, proc)
