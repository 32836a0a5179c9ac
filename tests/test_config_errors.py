"""#15 item 4: a value that cannot work ends the command before any model loads, with one
line on stderr naming the full key (and the closest valid key or the expected type) and
exit code 2: no Hydra report, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gsi.config import MIN_TEMPERATURE, MIN_TOP_P, validate
from gsi.errors import ConfigError
from gsi.cli.precheck import command_line_problem

ROOT = Path(__file__).resolve().parents[1]

# (overrides, what the one line must say)
COMPOSITION = [
    (["model.small.pathh=x"], "model.small.pathh=x is not a setting: did you mean model.small.path?"),
    (["reward.noise=abc"], "reward.noise=abc is not allowed: reward.noise must be a number"),
    (["progress=maybe"], "progress=maybe is not allowed: progress must be true or false"),
    (["beta="], "beta= (empty) is not allowed: beta must be a number"),
    (["+n_smal=8"], "+n_smal=8 adds an unknown setting: did you mean n_small?"),
    (["~beta"], "~beta deletes a required setting"),
    (["prefix_cache=-1"], "prefix_cache=-1 is not a setting: did you mean model.small.prefix_cache"),
]
VALUES = [
    (["seed=-1"], "seed=-1 is not allowed"),
    (["max_step_tokens=100000"], "max_step_tokens=100000 is not allowed: max_step_tokens must be below model.small's context length 256"),
    (["temperature=1e-300"], "temperature=1e-300 is not allowed"),
    (["top_p=1e-46"], "top_p=1e-46 is not allowed"),
    (["dataset.min_ops=5", "dataset.max_ops=2"], "dataset.max_ops=2 is not allowed: dataset.max_ops must be an integer >= dataset.min_ops=5"),
    (["dataset.num_problems=-5"], "dataset.num_problems=-5 is not allowed"),
    (["reward.noise=nan"], "reward.noise=nan is not allowed"),
    (["model.small.prefix_cache=-1"], "model.small.prefix_cache=-1 is not allowed"),
    (["reward=toy_prm", "reward.prefix_cache=-1"], "reward.prefix_cache=-1 is not allowed"),
    (["model=toy_vllm", "+model.big.env.VLLM_CPU_KVCACHE_SPACE=2"],
     "model.big.env.VLLM_CPU_KVCACHE_SPACE=2 is not allowed with model.big.engine_kwargs.kv_cache_memory_bytes="
     "268435456: both size the KV cache; keep one (to size it in GiB, add ~model.big.engine_kwargs.kv_cache_memory_bytes"),
]


def _run_py(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _assert_one_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gsi:") and needle in lines[0], lines[0]


@pytest.mark.e2e
@pytest.mark.parametrize("overrides,needle", COMPOSITION + VALUES)
def test_run_py_refuses_with_one_line_before_models_load(tmp_path, overrides, needle):
    run_dir = tmp_path / "run"
    proc = _run_py(*overrides, "tracking=none", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    _assert_one_line(proc, needle)
    assert not run_dir.exists()  # refused before Hydra made the run directory


@pytest.mark.e2e
def test_run_py_refuses_an_empty_run_dir(tmp_path):
    proc = _run_py("hydra.run.dir=", "tracking=none", cwd=tmp_path)
    _assert_one_line(proc, "hydra.run.dir= (empty) is not allowed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overrides,needle", COMPOSITION + VALUES)
def test_command_line_problem_names_the_key(overrides, needle):
    problem = command_line_problem(overrides)
    assert problem is not None and needle in problem and "\n" not in problem


def test_command_line_problem_passes_good_lines_and_sweeps():
    assert command_line_problem(["beta=2", "model.small.prefix_cache=0", "dataset.min_ops=3"]) is None
    assert command_line_problem(["-m", "beta=0.5,1"]) is None  # each job of a sweep validates itself


@pytest.mark.parametrize(
    "override,ok",
    [
        (f"temperature={MIN_TEMPERATURE}", True),
        (f"temperature={MIN_TEMPERATURE / 2}", False),
        (f"top_p={MIN_TOP_P}", True),
        (f"top_p={MIN_TOP_P / 2}", False),
        ("seed=0", True),
        (f"seed={2**63 - 1}", True),
        ("seed=-1", False),
        ("max_step_tokens=255", True),
        ("max_step_tokens=256", False),
        ("dataset.num_problems=1", True),
        ("dataset.num_problems=0", False),
        ("reward.noise=0", True),
        ("reward.noise=-0.1", False),
        ("reward.noise=inf", False),
        ("model.big.prefix_cache=0", True),
        ("model.big.prefix_cache=-1", False),
    ],
)
def test_validate_value_floors(compose, override, ok):
    cfg = compose(override)
    if ok:
        validate(cfg)
    else:
        key = override.split("=")[0]
        with pytest.raises(ConfigError, match=f"^{key}="):
            validate(cfg)


def test_floors_keep_the_sampling_law_finite_in_float32():
    """The documented floors are where float32 stops representing the sampling law."""
    import numpy as np

    assert np.float32(MIN_TOP_P) == np.finfo(np.float32).tiny and np.float32(1e-46) == 0
    logits = np.array([-1e30, 1e30], dtype=np.float32)
    assert np.isfinite(logits / np.float32(MIN_TEMPERATURE)).all()


def test_an_engine_whose_kv_cache_is_sized_twice_is_refused_before_vllm_starts():
    """``engine_kwargs.kv_cache_memory_bytes`` (what the toy vLLM configs use) and the
    engine's ``env.VLLM_CPU_KVCACHE_SPACE`` would both size its KV cache; vllm-cpu silently
    lets the second win. The start refuses, naming the key and the fix."""
    from gsi.engines.vllm import start_engine

    with pytest.raises(ConfigError, match=r"model\.big: both engine_kwargs\.kv_cache_memory_bytes .* keep one"):
        start_engine({"kv_cache_memory_bytes": 2**28}, {"VLLM_CPU_KVCACHE_SPACE": 1}, None, "model.big")
