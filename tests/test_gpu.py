"""The same exactness checks on a CUDA GPU (the transformers backend on cuda against the
CPU, and CUDA vLLM against transformers). Skipped, with the reason, where there is none."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]

from gsi.config import toy_model_path  # noqa: E402
from gsi.types import SamplingParams  # noqa: E402


@pytest.fixture(scope="module")
def prompts():
    from gsi.toy.task import generate_problems

    return [p.prompt for p in generate_problems(16, 5, True, 2, 3)]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.5, 0.95)])
def test_transformers_on_cuda_scores_like_the_cpu(prompts, temperature, top_p):
    from gsi.backends.hf import HFBackend

    gpu = HFBackend(toy_model_path("big"), device="cuda")
    cpu = HFBackend(toy_model_path("big"), device="cpu", num_threads=1)
    params = SamplingParams(temperature, top_p, 16)
    steps = gpu.sample(prompts, 8, list(range(len(prompts))), params)
    drawn = np.array([[s.logprob for s in g] for g in steps])
    assert np.abs(drawn - np.array(cpu.score(prompts, steps, params))).max() <= 1e-4
    assert np.abs(drawn - np.array(gpu.score(prompts, steps, params))).max() <= 1e-4


@pytest.mark.vllm
@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0)])
def test_cuda_vllm_agrees_with_transformers(prompts, temperature, top_p):
    pytest.importorskip("vllm")
    from gsi.backends.hf import HFBackend
    from gsi.backends.vllm_backend import VLLMBackend

    v = VLLMBackend(toy_model_path("big"), dtype="float32", max_model_len=256, gpu_memory_utilization=0.2)
    assert v.temperature_in_logits, "the worker extension did not reach the CUDA model's logits"
    h = HFBackend(toy_model_path("big"), device="cuda")
    params = SamplingParams(temperature, top_p, 16)
    steps = v.sample(prompts, 8, list(range(len(prompts))), params)
    drawn = np.array([[s.logprob for s in g] for g in steps])
    assert np.abs(drawn - np.array(h.score(prompts, steps, params))).max() <= 1e-4
    assert np.abs(np.array(v.score(prompts, steps, params)) - np.array(h.score(prompts, steps, params))).max() <= 1e-4


@pytest.mark.vllm
@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0)])
def test_v2_runner_scoring_reads_the_prefix_cache_exactly(temperature, top_p, monkeypatch):
    """The V2 GPU runner returns prompt log-prob rows only for computed positions (and,
    at temperature 1, only the step's tokens through prompt_logprob_token_ids): scores
    that read the cache equal those that do not, and the transformers backend's."""
    pytest.importorskip("vllm")
    from gsi.backends.hf import HFBackend
    from gsi.backends.vllm_backend import VLLMBackend
    from gsi.types import StepSample
    from tests.test_vllm_prefix_cache import long_prompts

    v = VLLMBackend(toy_model_path("big"), dtype="float32", max_model_len=256, gpu_memory_utilization=0.2,
                    env={"VLLM_USE_V2_MODEL_RUNNER": "1"})
    assert v.computed_rows_only, "VLLM_USE_V2_MODEL_RUNNER=1 did not give the V2 runner"
    assert v.temperature_in_logits, "the worker extension did not reach the V2 runner's logits"
    h = HFBackend(toy_model_path("big"), device="cuda")
    params = SamplingParams(temperature, top_p, 16)
    prompts = long_prompts(12, 3)
    steps = v.sample(prompts, 6, list(range(len(prompts))), params)
    shared = [[StepSample("1+1=2\n" * 6 + "0" * k + "\n\n", 0, 0.0, "stop") for k in range(6)] for _ in steps]
    for group in (steps, shared):
        before = dict(v.score_counts)
        fast = np.array(v.score(prompts, group, params))
        assert v.score_counts["cached_tokens"] > before["cached_tokens"]
        monkeypatch.setattr(v, "read_prefix_cache", False)
        slow = np.array(v.score(prompts, group, params))
        monkeypatch.setattr(v, "read_prefix_cache", True)
        assert np.abs(fast - slow).max() <= 1e-5
        assert np.abs(fast - np.array(h.score(prompts, group, params))).max() <= 1e-4
