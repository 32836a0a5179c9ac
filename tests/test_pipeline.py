"""End to end on the toy world: the real conf/, the real toy models, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gsi.methods import METHODS
from gsi.metrics import METRIC_ORDER
from gsi.pipeline import run
from tests.helpers import ROOT, without_timing

SMALL_RUN = ("limit=6", "n_small=3", "n_big=2", "batch_size=4")


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_end_to_end(compose, tmp_path, method):
    metrics = run(compose(f"method={method}", *SMALL_RUN), tmp_path)
    rows = read_rows(tmp_path / "results.jsonl")
    assert len(rows) == 6 and len({r["problem_id"] for r in rows}) == 6
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert set(METRIC_ORDER) <= set(on_disk) and on_disk["num_problems"] == 6
    assert on_disk == json.loads(json.dumps(metrics))
    for r in rows:
        assert {"problem_id", "correct", "final_reward", "steps", "accepted_steps", "latency_s",
                "tokens_small", "tokens_big", "stop_reason", "steps_detail"} <= set(r)
        assert r["steps"] == len(r["steps_detail"])
        assert all({"text", "reward", "accepted", "source"} <= set(d) for d in r["steps_detail"])
    if method in ("small", "soft_bon_small", "bon_small"):
        assert metrics["acceptance_rate"] == 1.0 and metrics["tokens_big"] == 0
    if method in ("big", "soft_bon_big", "bon_big"):
        assert metrics["acceptance_rate"] == 0.0 and metrics["tokens_small"] == 0
    assert (tmp_path / "config.yaml").exists()


def test_same_seed_gives_identical_results(compose, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run(compose("method=gsi", *SMALL_RUN), a)
    run(compose("method=gsi", *SMALL_RUN), b)
    run(compose("method=gsi", "seed=1", *SMALL_RUN), c)
    rows_a = [without_timing(r) for r in read_rows(a / "results.jsonl")]
    assert rows_a == [without_timing(r) for r in read_rows(b / "results.jsonl")]
    assert rows_a != [without_timing(r) for r in read_rows(c / "results.jsonl")]


def test_interrupted_run_resumes_without_duplicates(compose, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    run(compose("method=rsd", "limit=10", "batch_size=4"), full)
    reference = {r["problem_id"]: without_timing(r) for r in read_rows(full / "results.jsonl")}
    # simulate a kill: 4 finished lines and half of the fifth
    lines = (full / "results.jsonl").read_text().splitlines(keepends=True)
    cut.mkdir()
    (cut / "results.jsonl").write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    metrics = run(compose("method=rsd", "limit=10", "batch_size=4"), cut)
    rows = [without_timing(r) for r in read_rows(cut / "results.jsonl")]
    assert len(rows) == 10 and {r["problem_id"] for r in rows} == set(reference)
    assert {r["problem_id"]: r for r in rows} == reference
    assert metrics["new_problems"] == 6 and metrics["num_problems"] == 10
    # a third run finds the run finished: it loads no model and keeps the stored metrics
    stored = (cut / "metrics.json").read_text()
    again = run(compose("method=rsd", "limit=10", "batch_size=4"), cut)
    assert again == json.loads(stored) and (cut / "metrics.json").read_text() == stored
    assert len(read_rows(cut / "results.jsonl")) == 10


def _run_py(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.e2e
def test_run_py_writes_outputs_in_hydra_run_dir(tmp_path):
    proc = _run_py("limit=4", "progress=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "acceptance_rate" in proc.stdout
    assert len(read_rows(tmp_path / "results.jsonl")) == 4
    assert (tmp_path / "metrics.json").exists() and (tmp_path / ".hydra" / "config.yaml").exists()


@pytest.mark.e2e
def test_multirun_sweep_gives_one_run_dir_per_job(tmp_path):
    proc = _run_py("-m", "beta=0.5,2", "method=gsi,rsd", "limit=3", "progress=false", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    found = sorted(tmp_path.glob("*/metrics.json"))
    assert len(found) == 4
    seen = {(m["method"], m["beta"]) for m in (json.loads(p.read_text()) for p in found)}
    assert seen == {("gsi", 0.5), ("gsi", 2.0), ("rsd", 0.5), ("rsd", 2.0)}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "override,needle",
    [
        ("n_small=0", "n_small=0"),
        ("beta=-1", "beta=-1"),
        ("top_p=1.5", "top_p=1.5"),
        ("temperature=-1", "temperature=-1"),
        ("shard.index=3", "shard.index=3"),
        ("limit=-2", "limit=-2"),
        ("beta=nan", "beta=nan"),
        ("threshold=nan", "threshold=nan"),
        ("model.big.path=/nonexistent/big", "model.big.path='/nonexistent/big'"),
        ("model.big=null", "needs a big model but model.big is null"),
        ("tracking.mode=sometimes", "tracking.mode='sometimes'"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(tmp_path, override, needle):
    proc = _run_py(override, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args,needle",
    [
        (["method=gsii"], "method='gsii' is not an option: choose one of big, bon_big"),
        (["model=toyy"], "model='toyy' is not an option"),
        (["dataset=math5000"], "dataset='math5000' is not an option"),
        (["reward=prm"], "reward='prm' is not an option"),
        (["tracking=wandbb"], "tracking='wandbb' is not an option"),
        (["-m", "hydra/launcher=slurmm"], "hydra/launcher='slurmm' is not an option"),
        (["-m", "method=gsi,rsdd"], "method='rsdd' is not an option"),
        (["+experiment=papr"], "experiment='papr' is not an option"),
        (["beta=abc"], "beta=abc is not allowed: beta must be a number"),
        (["-m", "n_small=4,four"], "n_small=four is not allowed: n_small must be an integer"),
        (["limit=ten"], "limit=ten is not allowed: limit must be an integer"),
    ],
)
def test_unknown_group_option_is_one_line_before_running(tmp_path, args, needle):
    proc = _run_py(*args, f"hydra.run.dir={tmp_path}", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2 and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.e2e
def test_unknown_key_fails_before_running(tmp_path):
    proc = _run_py("betta=1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "betta=1 is not a setting: did you mean beta?" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _run_py("model.small.pathh=/x", f"hydra.run.dir={tmp_path}")  # nested keys: the schema says no
    assert proc.returncode != 0 and "pathh" in proc.stderr and "Traceback" not in proc.stderr
