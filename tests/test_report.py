"""analysis/: shard merging, failed and incomplete runs, Pareto front, comparison
table, W&B dashboard definition, and the loop's per-step summaries it all builds on."""

from __future__ import annotations

import json
import shutil

import pytest

from analysis.collect import collect
from analysis.plots import pareto_front
from analysis.report import build_report, comparison
from gsi.pipeline import run

RUN = ("tracking=none", "limit=6", "n_small=2", "n_big=2", "batch_size=4")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """gsi unsharded, the same config in two shards, and soft_bon_big unsharded."""
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    root = tmp_path_factory.mktemp("runs")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):

        def go(path, *overrides):
            return run(compose("config", overrides=["progress=false", *RUN, *overrides]), root / path)

        full = go("full/gsi", "method=gsi")
        for i in (0, 1):
            go(f"sharded/shard{i}", "method=gsi", "shard.count=2", f"shard.index={i}")
        big = go("full/soft_bon_big", "method=soft_bon_big")
    return root, full, big


def test_shards_merge_into_the_unsharded_result(runs, tmp_path):
    root, full, _ = runs
    configs, bad = collect([root / "sharded"])
    assert bad == [] and len(configs) == 1
    (c,) = configs
    assert c.complete and c.metrics["num_shards"] == 2 and len(c.rows) == 6
    for key in (
        "accuracy",
        "mean_final_reward",
        "acceptance_rate",
        "steps_per_problem",
        "tokens_small",
        "tokens_big",
        "num_problems",
        "num_errors",
    ):
        assert c.metrics[key] == pytest.approx(full[key], rel=1e-12), key
    # the unsharded run and the merged shards are different configurations only by shard.count
    configs, _ = collect([root / "full", root / "sharded"])
    assert len(configs) == 3


def test_failed_and_incomplete_runs_are_listed(runs, tmp_path):
    root, _, _ = runs
    shutil.copytree(root / "sharded" / "shard0", tmp_path / "only_shard0")
    shutil.copytree(root / "full" / "gsi", tmp_path / "killed")
    (tmp_path / "killed" / "metrics.json").unlink()
    (tmp_path / "crashed" / ".hydra").mkdir(parents=True)
    report = build_report([tmp_path], tmp_path / "report")
    status = {r.path.name: r.status for r in report["bad"]}
    assert status == {"killed": "incomplete", "crashed": "failed"}
    (row,) = report["rows"]
    assert row["missing_shards"] == "1"
    md = (tmp_path / "report" / "report.md").read_text()
    assert "killed" in md and "crashed" in md and "no metrics.json" in md and "missing 1" in md


def test_method_comparison_matches_settings(runs, tmp_path):
    root, full, big = runs
    report = build_report([root / "full"], tmp_path)
    rows = {r["method"]: r for r in report["comparison"]}
    assert set(rows) == {"gsi", "soft_bon_big"}
    assert rows["gsi"]["accuracy"] == full["accuracy"]
    assert rows["gsi"]["latency_vs_soft_bon_big"] == pytest.approx(
        full["latency_mean_s"] / big["latency_mean_s"]
    )
    assert rows["soft_bon_big"]["threshold"] is None
    assert (tmp_path / "comparison.csv").exists()
    assert comparison([r for r in report["rows"] if r["method.name"] == "gsi"], report["swept"]) == []


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.2), (2.0, 0.7)]
    assert pareto_front(pts) == [3, 0, 1]


def test_dashboard_definition_has_the_panels_and_the_logged_keys():
    pytest.importorskip("wandb_workspaces")
    from analysis.dashboards import build_workspace, definition, panel_keys
    from analysis.panels import CURVES, PANELS
    from gsi.metrics import METRIC_ORDER
    from gsi.tracking import PROBLEM_KEYS, PROBLEM_X, STEP_KEYS, STEP_X

    spec = definition(build_workspace("team", "gsi", group="2026-01-01_00-00-00"))
    assert spec["entity"] == "team" and spec["project"] == "gsi"
    runset = spec["spec"]["section"]["runSets"][0]
    assert runset["filters"]["filters"][0]["value"] == "2026-01-01_00-00-00"
    panels = {p["title"]: p for p in panel_keys(spec)}
    assert panels["Accuracy vs β"]["x"] == "config:beta.value"
    assert panels["Accuracy vs β"]["y"] == ["summary:accuracy"]
    assert panels["Acceptance rate vs threshold"]["x"] == "config:threshold.value"
    assert panels["Accuracy vs latency"]["x"] == "summary:latency_mean_s"
    for p in PANELS:  # every sweep panel plots metrics the run's summary has
        assert panels[p.title]["y"] == [f"summary:{p.y}"] and p.y in METRIC_ORDER
    for title, x, ys in CURVES:  # every curve plots keys the tracker logs, on its x-axis
        assert panels[title]["x"] == x and panels[title]["y"] == list(ys)
        assert set(ys) <= set(PROBLEM_KEYS if x == PROBLEM_X else STEP_KEYS) and x in (PROBLEM_X, STEP_X)
    json.dumps(spec)  # what would be sent is plain JSON


def test_step_summaries_add_up_to_the_results(compose):
    from gsi.backends.table import TableLM
    from gsi.config import validate
    from gsi.data import ToyArithmetic
    from gsi.decoding import Decoder
    from gsi.grading import get_grader
    from gsi.toy.verifier import ToyVerifier
    from tests.helpers import toy_table

    problems = ToyArithmetic(num_problems=10, seed=3).load()
    settings = validate(compose("method=gsi", "batch_size=4", "threshold=0.6", "n_small=1"))
    results, steps = [], []
    decoder = Decoder(
        settings, TableLM(toy_table(0.6), "s"), TableLM(toy_table(0.95), "b"), ToyVerifier(), get_grader("exact_number")
    )
    stats = decoder.run(problems, results.append, steps.append)
    assert [s.step for s in steps] == list(range(stats.steps))
    assert all(s.active <= 4 for s in steps)
    assert sum(s.chosen for s in steps) == sum(r.steps for r in results)
    assert sum(s.accepted for s in steps) == sum(r.accepted_steps for r in results)
    assert 0 < sum(s.accepted for s in steps) < sum(s.chosen for s in steps)  # both branches happened
    rewards = [d["reward"] for r in results for d in r.steps_detail]
    weighted = sum(s.mean_reward * s.chosen for s in steps if s.mean_reward is not None)
    assert weighted == pytest.approx(sum(rewards))
