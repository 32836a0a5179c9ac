"""Fault injection (#15), part one: the run directory's identity (one configuration),
its one writer (the run lock) and error rows, each answered with an exit code, one line
without a traceback, and the rows finished before left as they were. Part two (output
directories and files, sweeps checking their jobs, interrupts, shard merges) is
``tests/test_trust_outputs.py``; their shared pieces are in ``tests/trust_utils.py``.

Most cases run the pipeline in this process on a copy of one finished toy run; the ones
that need Hydra, a launcher, a second process or a signal run ``run.py`` (marked ``e2e``).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gsi.pipeline
from gsi.pipeline import run
from tests.helpers import ROOT, assert_same_results
from tests.sweep_utils import run_py
from tests.trust_utils import ARGS, ENV, LONG, compose, last_line, one_line, refused, rows


# ------------------------------------------------------------------ 1. run identity
def test_another_method_into_a_finished_dir_is_refused(capsys, run_dir):
    before, config = rows(run_dir), (run_dir / "config.yaml").read_text()
    line = refused(capsys, 2, "method=small", where=run_dir)
    assert "holds a run of another configuration" in line and "method.name" in line and '"small" here' in line
    assert rows(run_dir) == before and (run_dir / "config.yaml").read_text() == config


def test_another_beta_into_a_half_finished_dir_is_refused_before_models_load(capsys, run_dir):
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[:3]))
    (run_dir / "metrics.json").unlink()
    gsi.pipeline._release(set())  # nothing loaded: a refusal must not load anything
    line = refused(capsys, 2, "beta=0.5", where=run_dir)
    assert "beta (0.5 here, 20 recorded)" in line
    assert not gsi.pipeline._LOADED and len(rows(run_dir)) == 3


def test_many_differing_keys_are_named_and_counted(capsys, run_dir):
    line = refused(capsys, 2, "seed=3", "n_small=2", "threshold=0.1", "temperature=0.5", where=run_dir)
    assert "n_small (2 here, 4 recorded)" in line and "seed (3 here, 0 recorded)" in line
    assert "temperature" in line and "and 1 more" in line


def test_unreadable_config_record_is_refused(capsys, run_dir):
    before = rows(run_dir)
    (run_dir / "config.yaml").write_text("beta: [unclosed\n")
    line = refused(capsys, 2, where=run_dir)
    assert "config.yaml is unreadable" in line
    assert rows(run_dir) == before


def test_same_config_written_differently_is_the_same_run(capsys, run_dir):
    before = (run_dir / "results.jsonl").read_bytes()
    metrics = run(compose("beta=20", "progress=true", "retry_errors=false"), run_dir)
    assert metrics["num_problems"] == 6 and "finished earlier" in capsys.readouterr().out
    assert (run_dir / "results.jsonl").read_bytes() == before


@pytest.mark.e2e
def test_the_same_config_from_another_checkout_gets_the_same_directory(tmp_path):
    """A copy of the checkout elsewhere (as a second clone would be) names the run alike."""
    clone = tmp_path / "elsewhere" / "gsi-clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "__pycache__", "wandb"))
    code = ("import gsi.config; gsi.config.register(); from hydra import compose, initialize_config_dir\n"
            "from gsi.launch.identity import run_id\n"
            "with initialize_config_dir(config_dir=__import__('os').path.abspath('conf'), version_base='1.3'):\n"
            f"    print(run_id(compose('config', overrides={list(ARGS)!r})))\n")
    ids = []
    for where in (ROOT, clone):
        proc = subprocess.run([sys.executable, "-c", code], cwd=where, capture_output=True, text=True,
                              env={**ENV, "PYTHONPATH": str(where)}, timeout=300)
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip().splitlines()[-1])
    assert ids[0] == ids[1]
    from gsi.launch.identity import identity

    assert identity(compose())["model.small.path"] == "gsi:toy/assets/small"


@pytest.mark.e2e
def test_run_py_refuses_another_config_before_hydra_rewrites_the_dir(tmp_path):
    out = tmp_path / "run"
    first = run_py(*ARGS, f"hydra.run.dir={out}")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in [out / "results.jsonl", out / "config.yaml", out / ".hydra" / "overrides.yaml"]}
    proc = run_py(*ARGS, "method=small", f"hydra.run.dir={out}")
    assert proc.returncode == 2
    assert "holds a run of another configuration: method.name" in one_line(proc.stderr)
    assert before == {p.name: p.read_bytes() for p in [out / "results.jsonl", out / "config.yaml",
                                                        out / ".hydra" / "overrides.yaml"]}


# ------------------------------------------------------------------ 2. one writer
def _hold_lock(where: Path) -> subprocess.Popen:
    """A second, real process that holds ``where``'s run lock until killed."""
    code = ("import sys, time; from gsi.rundir import RunLock\n"
            f"with RunLock({str(where)!r}):\n    print('holding', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**ENV, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_run_dir_held_by_another_process_is_refused_naming_it(capsys, run_dir):
    (run_dir / "metrics.json").unlink()
    before = rows(run_dir)
    holder = _hold_lock(run_dir)
    try:
        line = refused(capsys, 2, where=run_dir)
    finally:
        holder.kill()
        holder.wait()
    assert f"being written by another run (pid {holder.pid} on " in line
    assert rows(run_dir) == before


def test_the_lock_of_a_killed_process_is_not_stale(capsys, run_dir):
    from gsi.rundir import is_locked

    (run_dir / "metrics.json").unlink()
    holder = _hold_lock(run_dir)
    assert is_locked(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not is_locked(run_dir)
    assert run(compose(), run_dir)["num_problems"] == 6


@pytest.mark.e2e
def test_two_concurrent_launches_of_one_config_decode_each_problem_once(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *LONG, f"hydra.run.dir={out}"], cwd=ROOT,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "results.jsonl").exists() and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second started; make it longer"
    second = run_py(*LONG, f"hydra.run.dir={out}")
    assert second.returncode == 2
    line = last_line(second.stderr)
    assert f"pid {first.pid}" in line and "being written by another run" in line
    assert first.wait(timeout=600) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 24 == len({json.loads(x)["problem_id"] for x in lines})
    assert json.loads((out / "metrics.json").read_text())["num_problems"] == 24


@pytest.mark.e2e
def test_a_sweep_skips_the_job_another_process_is_running(tmp_path):
    from gsi.launch.identity import run_id

    sweep = tmp_path / "sweep"
    busy = sweep / run_id(compose("beta=2"))
    busy.mkdir(parents=True)
    holder = _hold_lock(busy)
    try:
        proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "beta=0.5,2")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "skipped, being written by pid" in proc.stdout + proc.stderr
    assert not (busy / "results.jsonl").exists()
    assert (sweep / run_id(compose("beta=0.5")) / "metrics.json").exists()


# ------------------------------------------------------------------ 3. error rows
def _with_errors(run_dir: Path, which: slice) -> list[str]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    ids = []
    for k in range(len(lines))[which]:
        row = json.loads(lines[k])
        row.update(error="RuntimeError: injected", stop_reason="error", correct=False)
        lines[k] = json.dumps(row, sort_keys=True)
        ids.append(row["problem_id"])
    (run_dir / "results.jsonl").write_text("".join(x + "\n" for x in lines))
    return ids


def test_error_rows_are_retried_by_default(run_dir, finished):
    reference = rows(finished)
    bad = _with_errors(run_dir, slice(1, 3))
    metrics = run(compose(), run_dir)
    assert metrics["num_errors"] == 0 and metrics["new_problems"] == 2
    assert_same_results(rows(run_dir), reference)
    quarantined = [json.loads(x) for x in (run_dir / "results.jsonl.bad").read_text().splitlines()]
    assert [r["problem_id"] for r in quarantined] == bad


def test_retry_errors_false_keeps_the_error_rows(run_dir):
    _with_errors(run_dir, slice(0, 1))
    before = (run_dir / "results.jsonl").read_bytes()
    metrics = run(compose("retry_errors=false"), run_dir)
    assert (run_dir / "results.jsonl").read_bytes() == before and metrics["num_problems"] == 6


def test_a_run_whose_every_problem_errored_exits_nonzero_with_the_first_error(capsys, run_dir):
    _with_errors(run_dir, slice(None))
    json.dump({**json.loads((run_dir / "metrics.json").read_text()), "num_errors": 6},
              (run_dir / "metrics.json").open("w"))
    before = (run_dir / "results.jsonl").read_bytes()
    with pytest.raises(SystemExit) as exc:
        run(compose("retry_errors=false"), run_dir)
    assert exc.value.code == 1
    line = one_line(capsys.readouterr().err)
    assert "all 6 problems failed" in line and "RuntimeError: injected" in line
    assert (run_dir / "results.jsonl").read_bytes() == before


@pytest.mark.e2e
def test_a_failed_job_does_not_stop_the_basic_sweep(tmp_path, finished):
    from gsi.launch.identity import run_id

    sweep = tmp_path / "sweep"
    failed = sweep / run_id(compose())
    shutil.copytree(finished, failed)
    _with_errors(failed, slice(None))
    before = (failed / "results.jsonl").read_bytes()
    proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "retry_errors=false", "beta=20,2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "all 6 problems failed" in proc.stderr
    assert last_line(proc.stderr).startswith("gsi: 1 of 2 jobs did not finish (#0)")
    assert (sweep / run_id(compose("beta=2")) / "metrics.json").exists()
    assert (failed / "results.jsonl").read_bytes() == before


