"""W&B tracking on the toy world, read back from W&B's offline files; the report on
the same sweep; W&B failures that must not stop a run."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gsi.config import ConfigError, validate
from gsi.metrics import METRIC_ORDER
from gsi.pipeline import run
from gsi.tracking import PROBLEM_KEYS, PROBLEM_X, STEP_KEYS, STEP_X, TABLE_KEY, resolve_mode, run_name
from tests.helpers import ROOT
from tests.wandb_records import offline_runs

pytest.importorskip("wandb")
SWEEP = (
    "-m",
    "method=gsi,rsd",
    "beta=1,20",
    "limit=5",
    "n_small=2",
    "n_big=2",
    "batch_size=4",
    "progress=false",
)
SMALL = ("limit=3", "n_small=2", "n_big=2")


def offline_env(tmp: Path) -> dict[str, str]:
    """An environment with no W&B credentials: W&B must run offline, never prompt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {
        **env,
        "HF_HUB_OFFLINE": "1",
        "NETRC": str(tmp / "no-netrc"),
        "WANDB_DIR": str(tmp / "wandb-default"),
    }


@pytest.fixture
def offline(monkeypatch, tmp_path):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """``run.py -m`` over 4 jobs with the default tracking=wandb and no credentials."""
    tmp = tmp_path_factory.mktemp("sweep")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *SWEEP, f"hydra.sweep.dir={tmp / 'sweep'}"],
        cwd=ROOT,
        env=offline_env(tmp),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "sweep"


@pytest.mark.e2e
def test_every_job_has_its_own_offline_wandb_run_with_the_named_metrics(sweep):
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 4
    names, ids = set(), set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        (wb,) = offline_runs(job / "wandb")  # exactly one W&B run per job, inside its run dir
        ids.add(wb.run_id)
        names.add(wb.name)
        assert wb.exit_code == 0  # the job finished its own run
        swept = sorted(o.split("=")[0] for o in SWEEP if "=" in o and not o.startswith(("hydra", "tracking")))
        assert wb.group == "sweep:" + ",".join(swept) and wb.job_type == metrics["method"]
        assert metrics["method"] in wb.tags and "toy_arith" in wb.tags
        assert wb.config["method"] == {"name": metrics["method"]} and wb.config["beta"] == metrics["beta"]
        assert wb.config["dataset"]["name"] == "toy_arith" and "small" in wb.config["model"]
        assert wb.name == f"{metrics['method']} beta={metrics['beta']:g} u=0.5"
        # x-axes
        steps = {m["name"]: m["step_metric"] for m in wb.metrics}
        assert steps["problem/*"] == PROBLEM_X and steps["step/*"] == STEP_X
        # one history row per finished problem, one per decoding step
        problems = [h for h in wb.history if PROBLEM_X in h]
        assert [h[PROBLEM_X] for h in problems] == [1, 2, 3, 4, 5]
        assert all(set(PROBLEM_KEYS) <= set(h) for h in problems)
        assert problems[-1]["problem/running_accuracy"] == pytest.approx(metrics["accuracy"])
        assert problems[-1]["problem/running_acceptance_rate"] == pytest.approx(metrics["acceptance_rate"])
        assert sum(h["problem/tokens_big"] for h in problems) == metrics["tokens_big"]
        step_rows = [h for h in wb.history if STEP_X in h]
        assert [h[STEP_X] for h in step_rows] == list(range(metrics["decoding_steps"]))
        assert all(set(STEP_KEYS) <= set(h) for h in step_rows)
        assert all(0 <= h["step/acceptance_rate"] <= 1 for h in step_rows)
        # summary = metrics.json; the per-problem table
        for key in METRIC_ORDER:
            if metrics[key] is not None:
                assert wb.summary[key] == pytest.approx(metrics[key]), key
        assert wb.summary[f"{TABLE_KEY}/nrows"] == 5
        table = json.loads((wb.files_dir / wb.summary[f"{TABLE_KEY}/path"]).read_text())
        rows = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
        pid = table["columns"].index("problem_id")
        assert sorted(r[pid] for r in table["data"]) == sorted(r["problem_id"] for r in rows)
    assert len(ids) == 4 and len(names) == 4


@pytest.mark.e2e
def test_report_on_the_sweep_equals_metrics_json_and_draws_real_plots(sweep, tmp_path):
    from matplotlib.image import imread

    from analysis.report import main

    assert main([str(sweep), "--out", str(tmp_path)]) == 0
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4
    for job in sweep.glob("*/metrics.json"):
        metrics = json.loads(job.read_text())
        (row,) = [
            r for r in table if r["method.name"] == metrics["method"] and float(r["beta"]) == metrics["beta"]
        ]
        for key in (
            "accuracy",
            "acceptance_rate",
            "mean_final_reward",
            "latency_mean_s",
            "latency_p95_s",
            "tokens_small",
            "tokens_big",
            "num_problems",
            "num_errors",
        ):
            assert float(row[key]) == metrics[key], key
        assert float(row["accuracy_lo"]) <= metrics["accuracy"] <= float(row["accuracy_hi"])
    md = (tmp_path / "report.md").read_text()
    assert "## Method comparison" in md and "## Failed or incomplete runs" in md and "None." in md
    for name in (
        "accuracy_vs_beta",
        "acceptance_vs_threshold",
        "accuracy_vs_latency",
        "final_reward_vs_beta",
        "tokens_per_method",
    ):
        image = imread(tmp_path / f"{name}.png")
        assert image.shape[:2] == (480, 640), name
        rgb = image[..., :3]
        assert (rgb < 0.9).any(axis=-1).mean() > 0.01, f"{name} is (nearly) blank"
        assert len({tuple(px) for px in rgb.reshape(-1, 3)[::7]}) > 20, f"{name} has too few colours"
        assert f"]({name}.png)" in md


def test_wandb_failing_at_start_is_logged_and_the_run_writes_its_results(compose, offline, tmp_path, caplog):
    # a real W&B error: wandb.init rejects the project name
    cfg = compose("tracking.mode=offline", "tracking.project=bad/project", *SMALL)
    with caplog.at_level(logging.WARNING, logger="gsi.tracking"):
        metrics = run(cfg, tmp_path)
    assert "W&B is off for this run" in caplog.text and "Invalid project name" in caplog.text
    assert metrics["num_problems"] == 3 and (tmp_path / "metrics.json").exists()
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    assert offline_runs(tmp_path) == []


def test_wandb_failing_mid_run_stops_tracking_not_the_run(compose, offline, tmp_path, caplog):
    from gsi.tracking import WandbTracker
    from gsi.types import ProblemResult

    cfg = compose("tracking.mode=offline", *SMALL)
    tracker = WandbTracker(mode="offline")
    tracker.start(cfg, tmp_path)
    assert tracker.run is not None
    tracker.run.finish()  # W&B's run goes away under the tracker: its next call raises
    result = ProblemResult("p0", True, 1.0, 2, 1, 0.1, 10, 0, "answer", "3", "3")
    with caplog.at_level(logging.WARNING, logger="gsi.tracking"):
        tracker.problem(result)
        tracker.finish({"accuracy": 1.0}, [result.to_json()])
    assert "W&B failed, tracking stops" in caplog.text and tracker.run is None
    assert tracker.totals.problems == 1


def test_no_network_falls_back_to_offline(compose, offline, monkeypatch, tmp_path, caplog):
    from gsi.tracking import WandbTracker

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # "logged in" ...
    # ... to a server that is not there (a setting, not WANDB_BASE_URL: W&B reads its
    # environment once per process, and an earlier test may have started it)
    tracker = WandbTracker(mode="auto", init_timeout=1, settings={"base_url": "http://127.0.0.1:9"})
    with caplog.at_level(logging.WARNING, logger="gsi.tracking"):
        tracker.start(compose(*SMALL), tmp_path)
    assert "logging offline" in caplog.text
    tracker.finish({"accuracy": 0.5}, [])
    (wb,) = offline_runs(tmp_path, wait_s=30)
    assert wb.summary["accuracy"] == 0.5 and wb.exit_code == 0


def test_mode_is_online_only_with_credentials_and_never_prompts(offline, monkeypatch, tmp_path):
    assert resolve_mode("auto") == "offline"
    assert resolve_mode("online") == "offline"  # no key: offline instead of a login prompt
    assert resolve_mode("disabled") == "disabled"
    (tmp_path / "no-netrc").write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert resolve_mode("auto") == "online"
    (tmp_path / "no-netrc").write_text("machine api.forge.coreweave.com login user password " + "k" * 40 + "\n")
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")  # a key for another host does not count
    assert resolve_mode("auto") == "offline"
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline" and resolve_mode("online") == "online"
    (tmp_path / "no-netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_mode("auto") == "online"


def test_tracking_none_and_names(compose, tmp_path):
    run(compose("tracking=none", *SMALL), tmp_path)
    assert (tmp_path / "metrics.json").exists() and not (tmp_path / "wandb").exists()
    assert run_name(compose("method=gsi", "beta=2", "threshold=0.3")) == "gsi beta=2 u=0.3"
    assert run_name(compose("method=soft_bon_small", "beta=2")) == "soft_bon_small beta=2"
    assert run_name(compose("method=rsd", "shard.count=4", "shard.index=1")) == "rsd beta=20 u=0.5 shard=1/4"
    with pytest.raises(ConfigError, match="tracking.mode='sometimes'"):
        validate(compose("tracking.mode=sometimes"))
