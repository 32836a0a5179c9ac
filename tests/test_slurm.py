"""Sweeps on a real SLURM cluster (``bash launchers/local_slurm.sh start`` gives one here).

Skipped with a reason when no cluster answers; ``GSI_REQUIRE_SLURM=1`` (set by ``.ci/run``)
turns that skip into a failure, so CI cannot pass without running them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.sweep_utils import (TOY, check_one_failing_job, metrics_files, read_rows, run_py, start_run_py, submitted, sweep_table,
                               wait_for_rows)

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]  # every test runs run.py against the cluster

SLURM = ("-m", "hydra/launcher=slurm", *TOY)


def _no_cluster() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    for mod in ("submitit", "hydra_plugins.hydra_submitit_launcher"):
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed (the `slurm` extra)"
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on PATH; start one with: sudo bash launchers/local_slurm.sh start"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: no SLURM controller answers"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"no usable SLURM node (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    reason = _no_cluster()
    if reason is None:
        return
    if os.environ.get("GSI_REQUIRE_SLURM") == "1":
        pytest.fail(f"GSI_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


def _sacct_states(job_ids: list[str], wait_s: float = 60) -> list[str]:
    """Final SLURM states of the jobs (a job's result file is written just before it exits)."""
    end = time.monotonic() + wait_s
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", ",".join(job_ids)],
                             capture_output=True, text=True, timeout=30, check=True)
        states = out.stdout.split()
        if not set(states) & {"PENDING", "RUNNING", "COMPLETING", "REQUEUED"} or time.monotonic() > end:
            return states
        time.sleep(0.5)


def test_three_job_sweep_gives_three_runs_and_a_relaunch_submits_nothing(tmp_path):
    proc = run_py(*SLURM, "beta=0.5,1,2", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert len(metrics_files(tmp_path)) == 3
    table = sweep_table(proc.stdout)
    assert [r["state"] for r in table] == ["done"] * 3
    array = {r["job"].split("_")[0] for r in table}
    assert len(array) == 1, "one job array per sweep"
    assert _sacct_states([r["job"] for r in table]) == ["COMPLETED"] * 3
    jobs_before = submitted(tmp_path)

    again = run_py(*SLURM, "beta=0.5,1,2", f"hydra.sweep.dir={tmp_path}")
    assert again.returncode == 0, again.stderr
    assert "0 to submit" in again.stdout and submitted(tmp_path) == jobs_before
    assert [r["state"] for r in sweep_table(again.stdout)] == ["finished earlier"] * 3


def test_sharded_sweep_merges_to_the_unsharded_run(tmp_path, compose):
    from analysis.merge import main as merge_main
    from gsi.launch.identity import run_id
    from gsi.pipeline import run

    sweep = tmp_path / "sweep"
    proc = run_py(*SLURM, "limit=9", "shard.count=3", "shard.index=0,1,2", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    assert len(metrics_files(sweep)) == 3
    assert merge_main([str(sweep)]) == 0
    merged = read_rows(sweep / run_id(compose(*TOY, "limit=9")) / "results.jsonl")
    run(compose(*TOY, "limit=9"), tmp_path / "full")
    reference = {r["problem_id"]: r for r in read_rows(tmp_path / "full" / "results.jsonl")}
    assert sorted(r["problem_id"] for r in merged) == sorted(reference)
    for row in merged:
        ref = reference[row["problem_id"]]
        assert [d["text"] for d in row["steps_detail"]] == [d["text"] for d in ref["steps_detail"]]
        for key in ("correct", "final_reward", "steps", "accepted_steps", "tokens_small", "tokens_big",
                    "stop_reason", "answer"):
            assert row[key] == ref[key], key


def test_job_signalled_at_its_time_limit_is_requeued_and_loses_nothing(tmp_path):
    """SLURM sends SIGUSR2 ``signal_delay_s`` before the time limit (``--signal``); we send the
    same signal with scancel, as submitit's own tests do, because SLURM's timer fires with up to
    a minute of slack. With ``timeout_min`` <= 10 submitit counts any such signal as a time-out.
    (signal_delay_s must stay below the time limit: SLURM then signals each attempt itself.)"""
    from gsi.data import ToyArithmetic

    name = f"gsi-requeue-{uuid.uuid4().hex[:8]}"
    proc = start_run_py(*SLURM, "limit=40", "batch_size=1", "hydra.launcher.timeout_min=5",
                        "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=2", f"hydra.launcher.name={name}",
                        f"hydra.sweep.dir={tmp_path}")
    run_dir = wait_for_rows(tmp_path, 2, proc)
    job = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True,
                         timeout=30).stdout.split()
    assert len(job) == 1, job
    subprocess.run(["scancel", "--signal=USR2", job[0]], check=True, timeout=30)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    [row] = sweep_table(out)
    assert row["state"] == "done" and row["requeues"] == "1"
    ids = [r["problem_id"] for r in read_rows(run_dir / "results.jsonl")]
    assert len(ids) == len(set(ids)) == 40 and set(ids) == {p.id for p in ToyArithmetic().load()[:40]}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["requeues"] == 1 and metrics["num_problems"] == 40
    log = (tmp_path / ".submitit" / job[0] / f"{job[0]}_0_log.err").read_text()
    assert "timed-out" in log and "requeued 1 time(s)" in log  # one log file across both attempts


def test_a_failing_job_is_reported_and_the_others_keep_their_results(tmp_path):
    table = check_one_failing_job(SLURM, tmp_path)
    assert _sacct_states([r["job"] for r in table]) == ["FAILED", "COMPLETED"]
