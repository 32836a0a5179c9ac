"""Helpers and constants shared by test modules (fixtures and hooks stay in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def toy_vllm_kv_cache() -> dict:
    """``engine_kwargs`` that size an engine's KV cache as ``model=toy_vllm`` does (256 MiB),
    for the tests that start vLLM engines themselves. The in-process engines of a test
    session are never freed, so each one's KV cache stays resident to the end (1 GiB each
    at ``VLLM_CPU_KVCACHE_SPACE=1``)."""
    from omegaconf import OmegaConf

    return {"kv_cache_memory_bytes": OmegaConf.load(CONF / "model" / "toy_vllm.yaml").big.engine_kwargs.kv_cache_memory_bytes}


# Fields of a result row that are wall-clock measurements, so differ between equal runs.
TIMING_FIELDS = ("latency_s",)


def without_timing(row: dict) -> dict:
    """A copy of a result row without its timing fields (which every row must have)."""
    out = dict(row)
    for field in TIMING_FIELDS:
        out.pop(field)
    return out


def toy_table(p_correct: float):
    """A table LM law for the toy task: the reference next step with ``p_correct``,
    an off-by-one wrong step otherwise (both as whole steps)."""
    from gsi.backends.law import STEP_SEPARATOR as STEP_SEP
    from gsi.toy.task import parse_prompt

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
