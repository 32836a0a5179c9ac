"""Run identity (output dir = name + hash of the result-relevant config) and shard merging."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.merge import main as merge_main
from gsi.data import select, shard_of, ToyArithmetic
from gsi.launch.identity import NON_RESULT_KEYS, run_id
from gsi.launch.resources import gpus_per_task
from gsi.pipeline import run
from tests.helpers import assert_same_results, without_timing
from tests.sweep_utils import TOY, read_rows


def test_same_config_same_id_and_different_config_different_id(compose):
    base = run_id(compose(*TOY))
    assert base == run_id(compose(*TOY)) == run_id(compose(*TOY, "beta=20.0"))
    assert base.startswith("gsi_toy_arith_b20-") and len(base.rsplit("-", 1)[1]) == 10
    # keys that do not change results do not change the id
    assert run_id(compose(*TOY, "progress=true")) == base
    assert run_id(compose(*TOY, "hydra/launcher=local")) == base
    assert {"hydra", "progress", "tracking", "launcher"} <= NON_RESULT_KEYS
    # every result-relevant key does, including nested ones and the shard
    others = {run_id(compose(*TOY, o)) for o in (
        "beta=2", "threshold=0.4", "seed=1", "method=rsd", "reward.noise=0.1", "limit=7",
        "dataset.seed=5", "n_small=4", "shard.count=2", "model.big.dtype=float64")}
    assert len(others) == 10 and base not in others
    assert run_id(compose(*TOY, "shard.count=3", "shard.index=2")).startswith("gsi_toy_arith_b20_shard2of3-")
    assert run_id(compose(*TOY, "beta=inf")).startswith("gsi_toy_arith_binf-")


@pytest.mark.e2e
def test_run_py_default_dir_is_the_identity(compose, tmp_path):
    from tests.sweep_utils import run_py

    proc = run_py(*TOY, f"hydra.run.dir={tmp_path}/${{gsi.run_id:}}")
    assert proc.returncode == 0, proc.stderr
    [made] = [p for p in tmp_path.iterdir()]
    assert made.name == run_id(compose(*TOY)) and (made / "metrics.json").exists()


def _with_hydra(*overrides: str):
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_gpus_per_task_follows_the_model_layout(compose):
    assert gpus_per_task(compose()) is None  # device: auto -> ask for nothing, the user decides
    assert gpus_per_task(compose("model.small.device=cuda:0", "model.big.device=cuda:1")) == 2
    assert gpus_per_task(compose("model.small.device=cuda", "model.big.device=cuda")) == 1
    cfg = _with_hydra("hydra/launcher=slurm", "model.small.device=cuda:0", "model.big.device=cuda:2")
    assert cfg.hydra.launcher.gpus_per_node == 3
    assert _with_hydra("hydra/launcher=slurm").hydra.launcher.gpus_per_node is None


def test_conf_puts_runs_and_sweep_jobs_in_their_identity_dir(compose):
    cfg = _with_hydra(*TOY, "beta=0.5")
    expected = run_id(compose(*TOY, "beta=0.5"))
    assert cfg.hydra.run.dir == f"outputs/runs/{expected}"
    assert cfg.hydra.sweep.dir == "outputs/runs" and cfg.hydra.sweep.subdir == expected


def _sharded(compose, root: Path, count: int, *extra: str) -> list[Path]:
    dirs = []
    for i in range(count):
        d = root / f"shard{i}"
        run(compose(*TOY, "limit=9", f"shard.count={count}", f"shard.index={i}", *extra), d)
        dirs.append(d)
    return dirs


def test_shards_partition_the_problems_stably():
    problems = ToyArithmetic().load()[:50]
    parts = [select(problems, 50, i, 4) for i in range(4)]
    assert sorted(p.id for part in parts for p in part) == sorted(p.id for p in problems)
    # the limit applies before sharding, and a problem's shard does not depend on the rest
    assert [p.id for p in select(problems, 20, 1, 4)] == [p.id for p in parts[1] if p.id in
                                                         {q.id for q in problems[:20]}]
    assert all(shard_of(p.id, 4) == i for i, part in enumerate(parts) for p in part)


def test_merged_shards_equal_the_unsharded_run(compose, tmp_path, capsys):
    shards = _sharded(compose, tmp_path, 3)
    full = tmp_path / "full"
    run(compose(*TOY, "limit=9"), full)
    assert merge_main([str(d) for d in shards] + ["-o", str(tmp_path / "merged")]) == 0
    merged = read_rows(tmp_path / "merged" / "results.jsonl")
    reference = read_rows(full / "results.jsonl")
    order = [p.id for p in ToyArithmetic().load()[:9]]
    assert [r["problem_id"] for r in merged] == order  # data set order
    by_id = {r["problem_id"]: without_timing(r) for r in reference}
    assert_same_results([without_timing(r) for r in merged], [by_id[pid] for pid in order])
    m = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    f = json.loads((full / "metrics.json").read_text())
    for key in ("accuracy", "acceptance_rate", "mean_final_reward", "steps_per_problem", "tokens_small",
                "tokens_big", "num_problems", "num_errors"):
        assert m[key] == pytest.approx(f[key]), key
    assert m["num_problems"] == 9 and len(m["merged_shards"]) == 3 and m["requeues"] == 0
    # a sweep dir: the merge goes to the unsharded configuration's own directory
    sweep = tmp_path / "sweep"
    for d in shards:
        shutil.copytree(d, sweep / d.name)
    assert merge_main([str(sweep)]) == 0
    unsharded_id = run_id(compose(*TOY, "limit=9"))
    assert read_rows(sweep / unsharded_id / "results.jsonl") == merged
    assert "merged 3 shards, 9 problems" in capsys.readouterr().out


def test_merge_refuses_bad_shards_with_one_line(compose, tmp_path, capsys):
    shards = _sharded(compose, tmp_path / "a", 3)
    other = tmp_path / "b" / "shard2"
    run(compose(*TOY, "limit=9", "shard.count=3", "shard.index=2", "beta=2"), other)

    def refused(*paths) -> str:
        capsys.readouterr()
        assert merge_main([str(p) for p in paths] + ["-o", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("analysis.merge: refusing:") and len(err.splitlines()) == 1, err
        return err

    assert "missing shard(s) [2]" in refused(*shards[:2])
    assert "beta (20.0 vs 2.0)" in refused(shards[0], shards[1], other)
    assert "given twice" in refused(shards[0], shards[1], shards[1])
    # a problem written into two shards
    dup = tmp_path / "dup"
    shutil.copytree(shards[1], dup)
    with open(dup / "results.jsonl", "a") as f:
        f.write((shards[0] / "results.jsonl").read_text().splitlines()[0] + "\n")
    assert "toy_arith-1234-" in (err := refused(shards[0], dup, shards[2])) and "appears twice" in err
    # a problem moved to the wrong shard
    moved = tmp_path / "moved"
    shutil.copytree(shards[0], moved)
    lines = (moved / "results.jsonl").read_text().splitlines(keepends=True)
    (moved / "results.jsonl").write_text("".join(lines[1:]))
    assert "belongs to shard 0, not 1" in refused(moved, dup, shards[2])
    # a problem missing (e.g. results.jsonl edited by hand) and an unfinished shard
    cut = tmp_path / "cut"
    shutil.copytree(shards[2], cut)
    lines = (cut / "results.jsonl").read_text().splitlines(keepends=True)
    (cut / "results.jsonl").write_text("".join(lines[1:]))
    assert "1 problem(s) missing" in refused(shards[0], shards[1], cut)
    (cut / "metrics.json").unlink()
    assert "has not finished" in refused(shards[0], shards[1], cut)
    assert not (tmp_path / "out").exists()
