"""`python -m analysis.report --table paper`: the paper's table from real toy runs, and the
one-config sweep of the paper's five data sets x four methods, every job composed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.report import main as report_main
from gsi.config import validate

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("soft_bon_small", "rsd", "gsi", "soft_bon_big")
DATASETS = {"toy_a": 1234, "toy_b": 99}
TOY = ("tracking=none", "limit=12", "n_small=2", "n_big=2", "max_steps=6")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Eight real toy runs: two 'data sets' (toy problems from two seeds) x four methods."""
    from hydra import compose, initialize_config_dir

    from gsi.pipeline import run

    root = tmp_path_factory.mktemp("sweep")

    def one(*overrides: str) -> Path:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=["progress=false", *TOY, *overrides])
        out = root / "_".join(o.replace("=", "-").replace("/", "-") for o in overrides)
        run(cfg, out)
        return out

    runs = {(d, m): one(f"dataset.name={d}", f"dataset.seed={s}", f"method={m}")
            for d, s in DATASETS.items() for m in METHODS}
    return root, runs, one


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]


def test_paper_table_has_accuracy_intervals_and_latency_relative_to_soft_bon_big(sweep, tmp_path, capsys):
    root, runs, _ = sweep
    assert report_main(["--table", "paper", str(root), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "paper_table.md").read_text()
    assert md in capsys.readouterr().out
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| method | toy_a"))
    assert head.split("|")[2].strip() == "toy_a (n=12)" and "toy_b (n=12)" in head
    acc_rows = lines[lines.index(head) + 2: lines.index(head) + 6]
    assert [r.split("|")[1].strip() for r in acc_rows] == ["soft-BoN π_S", "RSD", "GSI", "soft-BoN π_B"]
    lat_head = [i for i, line in enumerate(lines) if line.startswith("| method | toy_a |")][0]
    lat_rows = lines[lat_head + 2: lat_head + 6]
    for col, dataset in enumerate(DATASETS, start=2):
        base = {r["problem_id"]: r["latency_s"] for r in _rows(runs[dataset, "soft_bon_big"])}
        for k, method in enumerate(METHODS):
            metrics = json.loads((runs[dataset, method] / "metrics.json").read_text())
            cell = acc_rows[k].split("|")[col].strip()
            acc, lo, hi = map(float, re.fullmatch(r"([\d.]+) \[([\d.]+)–([\d.]+)\]", cell).groups())
            assert acc == pytest.approx(100 * metrics["accuracy"], abs=0.05)
            assert lo <= acc <= hi
            rows = _rows(runs[dataset, method])
            ratio = sum(r["latency_s"] for r in rows) / sum(base[r["problem_id"]] for r in rows)
            lat = lat_rows[k].split("|")[col].strip()
            got, llo, lhi = map(float, re.fullmatch(r"([\d.]+)× \[([\d.]+)–([\d.]+)\]", lat).groups())
            assert got == pytest.approx(ratio, abs=0.006) and llo <= got + 0.006 and got - 0.006 <= lhi
            if method == "soft_bon_big":
                assert lat.startswith("1.00× [1.00–1.00]")
    tex = (tmp_path / "paper_table.tex").read_text()
    assert tex.startswith(r"\begin{tabular}{lcc}") and tex.rstrip().endswith(r"\end{tabular}")
    assert tex.count(r" \\") == 1 + 1 + 4 + 1 + 4 and r"Soft BoN $\pi_B$" in tex and "toy\\_a" in tex


def test_seeds_are_pooled_and_other_differences_are_one_clear_error(sweep, tmp_path, capsys):
    from analysis.collect import collect
    from analysis.paper_table import cells

    root, runs, one = sweep
    extra = one("dataset.name=toy_a", "dataset.seed=1234", "method=gsi", "seed=1")
    configs, _ = collect([runs["toy_a", "gsi"], extra, runs["toy_a", "soft_bon_big"]])
    (gsi,) = [c for c in cells(configs) if c.method == "gsi"]
    both = _rows(runs["toy_a", "gsi"]) + _rows(extra)
    assert gsi.problems == 24 and gsi.accuracy == pytest.approx(np.mean([r["correct"] for r in both]))
    other = one("dataset.name=toy_a", "dataset.seed=1234", "method=gsi", "beta=2")
    code = report_main(["--table", "paper", str(runs["toy_a", "gsi"]), str(other), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "differ in beta" in err[0] and "one configuration per cell" in err[0]


def test_no_runs_is_one_line_and_exit_2(tmp_path, capsys):
    assert report_main(["--table", "paper", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


# ---------------------------------------------------------------- the sweep config
PAPER_DATASETS = ["math500", "olympiadbench", "minerva_math", "mmlu_stem", "gsm8k"]


@pytest.mark.e2e
def test_sweep_paper_expands_to_twenty_slurm_jobs_that_all_compose(compose, tmp_path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gsi.launch.identity import result_config
    from gsi.launch.resources import gpus_per_task

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        full = hydra_compose("config", overrides=["+experiment=sweep_paper"], return_hydra_config=True)
    params = dict(full.hydra.sweeper.params)
    assert str(full.hydra.mode) in ("MULTIRUN", "RunMode.MULTIRUN")
    assert full.hydra.launcher._target_.endswith("GsiSlurmLauncher")
    assert params["dataset"].split(",") == PAPER_DATASETS
    methods = params["+paper_method"].split(",")
    assert methods == list(METHODS)
    for dataset in PAPER_DATASETS:  # every job, as `run.py ... --cfg job` would compose it
        for method in methods:
            cfg = compose("+experiment=sweep_paper", f"dataset={dataset}", f"+paper_method={method}")
            settings = validate(cfg)
            result_config(cfg)
            assert (cfg.dataset.name, settings.method.name) == (dataset, method)
            assert settings.params.threshold == (0.7 if method == "rsd" else 0.5)
            assert (settings.n_small, settings.n_big, cfg.limit, settings.params.beta) == (16, 16, 500, 20.0)
            assert gpus_per_task(cfg) == 1
            assert ("Do not include units" in str(cfg.dataset.get("system_note"))) == (dataset == "minerva_math")
    # Hydra's own sweeper and the launcher's pre-submission check see the same 20 jobs: with a
    # value that no job accepts, each is listed and nothing is submitted.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "run.py", "+experiment=sweep_paper", "n_small=0",
                          f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 2, out.stderr
    labels = re.findall(r"config error in job #\d+ \((dataset=\S+ \+paper_method=\S+)", out.stderr)
    assert sorted(labels) == sorted(f"dataset={d} +paper_method={m}" for d in PAPER_DATASETS for m in METHODS)
    assert "20 of 20 jobs have config errors: nothing was submitted" in out.stderr
