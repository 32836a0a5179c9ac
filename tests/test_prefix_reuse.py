"""Prefix reuse on transformers: packed (tree-masked) scoring, sampling and PRM scoring
equal plain full recomputation of every sequence; the prefix cache is bounded by the
live problems; a PRM scores identical inputs once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsi.backends.hf import HFBackend
from gsi.backends.law import sampling_logprobs
from gsi.config import ASSETS, toy_model_path
from gsi.data import ToyArithmetic
from gsi.engines.hf_tree import token_logprobs
from gsi.types import SamplingParams, StepSample
from tests.helpers import assert_same_results

PROMPTS = [p.prompt for p in ToyArithmetic(num_problems=4, seed=5).load()]


@pytest.fixture(scope="module")
def big():
    return HFBackend(toy_model_path("big"), device="cpu", num_threads=1)


def unpacked_score(lm: HFBackend, prompt: str, step: StepSample, params: SamplingParams) -> float:
    """log pi(step | prompt) from one plain forward pass of prompt + step alone."""
    prompt_ids = lm.tokenizer.encode(prompt, add_special_tokens=True)
    cont = lm._encode_step(step)
    ids = torch.tensor([prompt_ids + cont])
    with torch.inference_mode():
        logits = lm.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
    logp = sampling_logprobs(logits, params.temperature, params.top_p)
    return float(logp.gather(-1, torch.tensor(cont)[:, None]).double().sum())


@pytest.mark.parametrize("temperature,top_p", [(0.7, 1.0), (1.3, 0.8)])
def test_packed_scoring_equals_unpacked_scoring(big, temperature, top_p):
    params = SamplingParams(temperature, top_p, max_tokens=16)
    prompts = [PROMPTS[0], PROMPTS[1] + "5+3=8\n\n", PROMPTS[2]]
    samples = big.sample(prompts, 5, [3, 4, 5], params)
    # uneven groups, an empty group and an EOS-ended step
    steps = [samples[0], [], samples[2][:2] + [StepSample("7", 2, 0.0, "eos")]]
    for cached in (False, True):  # the second round reads the prompts' KV from the cache
        packed = big.score(prompts, steps, params)
        assert [len(v) for v in packed] == [len(g) for g in steps]
        for prompt, group, values in zip(prompts, steps, packed):
            want = [unpacked_score(big, prompt, s, params) for s in group]
            np.testing.assert_allclose(values, want, atol=1e-5, rtol=1e-5)
    assert big.prefix_cache.hits > 0


def test_sampled_logprobs_equal_unpacked_scoring(big):
    params = SamplingParams(0.9, 1.0, max_tokens=16)
    first = big.sample(PROMPTS[:3], 4, [1, 2, 3], params)
    longer = [p + g[0].text for p, g in zip(PROMPTS[:3], first)]
    for prompts in (PROMPTS[:3], longer):  # fresh, then extending cached prompts
        for prompt, group in zip(prompts, big.sample(prompts, 4, [7, 8, 9], params)):
            for s in group:
                assert s.logprob == pytest.approx(unpacked_score(big, prompt, s, params), abs=1e-4)


def test_prefix_cache_holds_the_live_problems_only(big):
    big.prefix_cache.clear()
    params = SamplingParams(0.7, 1.0, max_tokens=16)
    prompts = list(PROMPTS[:3])
    for step in range(3):
        group = big.sample(prompts, 2, [step] * 3, params)
        prompts = [p + g[0].text for p, g in zip(prompts, group)]
        assert len(big.prefix_cache) <= 3
    big.sample([PROMPTS[3]], 2, [0], params)  # one new problem: an old entry goes
    assert len(big.prefix_cache) <= 3


def test_chunked_log_probs_equal_one_chunk(big):
    torch.manual_seed(0)
    hidden = torch.randn(37, big.model.config.hidden_size)
    targets = torch.randint(0, big.model.config.vocab_size, (37,))

    def law(logits):
        return sampling_logprobs(logits, 0.7, 0.9)

    whole = token_logprobs(big._head, hidden, targets, law, chunk=1024)
    torch.testing.assert_close(token_logprobs(big._head, hidden, targets, law, chunk=5), whole, atol=1e-5, rtol=1e-6)


# ------------------------------------------------------------------ the PRM
@pytest.fixture(scope="module")
def prm():
    from gsi.rewards.prm import HFQwenPRM

    return HFQwenPRM(str(ASSETS / "prm"), name="toy_prm", num_threads=1, aggregation="min")


def test_prm_with_cached_prefixes_equals_full_recomputation(prm):
    from gsi.toy.task import generate_problems
    from gsi.toy.prm_data import wrong_steps

    problems = generate_problems(4, seed=8, heldout=True)
    prm.prefix_cache.clear()
    for depth in range(3):  # step by step: each call extends the previous call's prefixes
        questions = [p.prompt for p in problems]
        previous = [p.solution_steps()[:depth] for p in problems]
        candidates = [[p.solution_steps()[depth], *wrong_steps(p, depth)[:3]] for p in problems]
        got = prm.score(questions, previous, candidates)
        for q, prev, cands, values in zip(questions, previous, candidates, got):
            full = prm.step_probabilities([prm.encode(q, list(prev) + [c]) for c in cands])
            np.testing.assert_allclose(values, [p.min() for p in full], atol=1e-5)
    assert prm.prefix_cache.hits >= 4 and len(prm.prefix_cache) <= 4


def test_prm_scores_identical_inputs_once(prm):
    widths = []
    hook = prm.model.model.register_forward_hook(lambda m, args, kwargs, out: widths.append(kwargs["input_ids"].shape),
                                                  with_kwargs=True)
    try:
        prm.prefix_cache.clear()
        same = prm.score([PROMPTS[0]], [[]], [["5+3=8\n\n"] * 4])
        prm.prefix_cache.clear()
        one = prm.score([PROMPTS[0]], [[]], [["5+3=8\n\n"]])
    finally:
        hook.remove()
    assert widths[0] == widths[1]  # four copies cost what one does
    np.testing.assert_allclose(same[0], np.repeat(one[0], 4))


def test_prm_shared_head_tokenizes_like_the_whole_input(prm):
    from gsi.rewards.prm_packed import encode_group
    from gsi.toy.task import generate_problems
    from gsi.toy.prm_data import wrong_steps

    for p in generate_problems(5, seed=4, heldout=True):
        ref = p.solution_steps()
        for depth in range(len(ref)):
            cands = [ref[depth], *wrong_steps(p, depth)[:5], " 12 ", "x<extra_0>y"]
            got = encode_group(prm, p.prompt, ref[:depth], cands)
            assert got == [prm.encode(p.prompt, ref[:depth] + [c]) for c in cands]


def test_size_buckets_keep_padding_within_slack():
    from gsi.engines.hf_tree import size_buckets

    widths, known = [11, 214, 12, 126, 11, 130, 246, 15], [400, 402, 404, 398, 400, 404, 401, 402]
    buckets = size_buckets(widths, known, per_token=320.0, slack=1.3)
    assert sorted(r for b in buckets for r in b) == list(range(len(widths)))
    for b in buckets:
        w, k = max(widths[r] for r in b), max(known[r] for r in b)
        own = sum(widths[r] * (320.0 + known[r] + widths[r]) for r in b)
        assert len(b) == 1 or len(b) * w * (320.0 + k + w) <= 1.3 * own
    assert {0, 2, 4} <= set(next(b for b in buckets if 0 in b))  # the short rows go together
    assert len(size_buckets([10] * 5, [30] * 5, per_token=320.0)) == 1


def test_scoring_in_size_buckets_equals_unpacked_scoring(big):
    """Groups of very different sizes run as several buckets; every number is still the
    unpacked one, and the prefixes of every bucket are cached."""
    from gsi.engines.hf_tree import bucketed_tree_forward, lookup_all

    params = SamplingParams(0.7, 1.0, max_tokens=16)
    prompts = [PROMPTS[0], PROMPTS[1] + "5+3=8\n\n", PROMPTS[2], PROMPTS[3]]
    samples = big.sample(prompts, 8, [3, 4, 5, 6], params)
    steps = [samples[0][:1], samples[1], [StepSample("7", 2, 0.0, "eos")], samples[3][:3]]
    conts = [[big._encode_step(s)[:-1] for s in g] for g in steps]
    ids = big._encode_prompts(prompts, 16)
    big.prefix_cache.clear()
    with torch.inference_mode():
        buckets = list(bucketed_tree_forward(big.model.base_model, list(zip(ids, conts)), None, big.pad_id, "cpu"))
    assert len(buckets) > 1
    for cached in (False, True):
        got = big.score(prompts, steps, params)
        for prompt, group, values in zip(prompts, steps, got):
            np.testing.assert_allclose(values, [unpacked_score(big, prompt, s, params) for s in group],
                                       atol=1e-5, rtol=1e-5)
        if not cached:
            hits = lookup_all([(p, []) for p in ids], big.prefix_cache)
            assert [c for c, _, _ in hits] == [len(p) - 1 for p in ids]  # every prompt's KV was kept


def test_prm_in_size_buckets_equals_full_recomputation(prm):
    """One problem with a single candidate, one with many: separate buckets, same rewards."""
    from gsi.toy.task import generate_problems
    from gsi.toy.prm_data import wrong_steps

    problems = generate_problems(3, seed=9, heldout=True)
    questions = [p.prompt for p in problems]
    calls = []
    hook = prm.model.model.register_forward_hook(lambda m, args, kwargs, out: calls.append(kwargs["input_ids"].shape),
                                                  with_kwargs=True)
    try:
        for depth in range(2):
            previous = [p.solution_steps()[:depth] for p in problems]
            candidates = [[problems[0].solution_steps()[depth]],
                          [problems[1].solution_steps()[depth], *wrong_steps(problems[1], depth)[:12]],
                          [problems[2].solution_steps()[depth]]]
            calls.clear()
            got = prm.score(questions, previous, candidates)
            assert len(calls) > 1
            for q, prev, cands, values in zip(questions, previous, candidates, got):
                full = prm.step_probabilities([prm.encode(q, list(prev) + [c]) for c in cands])
                np.testing.assert_allclose(values, [p.min() for p in full], atol=1e-5)
    finally:
        hook.remove()


def test_a_run_with_prefix_reuse_writes_the_steps_and_numbers_of_one_without(compose, tmp_path):
    """At the level a user reads: a GSI run with the learned PRM and every prefix cache on
    (the defaults) chooses the same steps, with the same rewards, scores and log-ratios to
    1e-5, as the run with the LM and PRM prefix caches off (``prefix_cache=0``)."""
    import json

    from gsi.pipeline import run

    off = ["model.small.prefix_cache=0", "model.big.prefix_cache=0", "reward.prefix_cache=0"]
    runs = {}
    for name, extra in (("reuse", []), ("none", off)):
        cfg = compose("reward=toy_prm", "limit=12", "tracking=none", *extra)
        metrics = run(cfg, tmp_path / name)
        assert metrics["num_errors"] == 0 and metrics["num_problems"] == 12
        rows = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
        runs[name] = {r["problem_id"]: r["steps_detail"] for r in rows}
    # every field of every step; floats (rewards, scores, log-ratios, ESS) to 1e-5
    assert_same_results(runs["reuse"], runs["none"], "steps_detail")
    assert sum(s["score"] is not None and s["log_ratio"] is not None
               for steps in runs["reuse"].values() for s in steps) > len(runs["reuse"])
