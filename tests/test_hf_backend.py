"""The transformers backend on the real toy models: exact sampled log-probs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsi.backends.hf import HFBackend, sampling_logprobs
from gsi.config import toy_model_path
from gsi.data import ToyArithmetic
from gsi.types import SamplingParams

PROMPTS = [p.prompt for p in ToyArithmetic(num_problems=5, seed=3).load()]


@pytest.fixture(scope="module")
def small():
    return HFBackend(toy_model_path("small"), device="cpu")


@pytest.mark.parametrize("temperature,top_p", [(0.7, 1.0), (1.0, 1.0), (0.7, 0.9), (1.3, 0.8)])
def test_sampled_logprobs_equal_scoring_of_the_same_steps(small, temperature, top_p):
    params = SamplingParams(temperature, top_p, max_tokens=16)
    prefixes = [PROMPTS[0], PROMPTS[1] + "5+3=8\n\n", PROMPTS[2]]
    samples = small.sample(prefixes, 6, [11, 12, 13], params)
    scored = small.score(prefixes, samples, params)
    for group, values in zip(samples, scored):
        np.testing.assert_allclose([s.logprob for s in group], values, atol=1e-4)
        assert all(np.isfinite(values))


def test_scoring_depends_on_the_sampling_law(small):
    """Raw (T=1) and tempered log-probs differ: mixing them would bias every weight."""
    hot, cold = SamplingParams(1.0, 1.0, 16), SamplingParams(0.7, 1.0, 16)
    samples = small.sample(PROMPTS[:2], 4, [1, 2], cold)
    a, b = small.score(PROMPTS[:2], samples, hot), small.score(PROMPTS[:2], samples, cold)
    assert not np.allclose(np.concatenate(a), np.concatenate(b), atol=1e-3)


def test_steps_stop_at_the_separator_or_eos(small):
    params = SamplingParams(0.7, 1.0, 16)
    for group in small.sample(PROMPTS, 4, range(5), params):
        for s in group:
            assert s.finish in {"stop", "eos", "length"}
            if s.finish == "stop":
                assert s.text.endswith("\n\n") and s.text.count("\n\n") == 1
            if s.finish == "length":
                assert s.num_tokens == 16


def test_per_problem_seeds_make_samples_batch_independent(small):
    params = SamplingParams(0.7, 1.0, 16)
    together = small.sample(PROMPTS, 4, [5, 6, 7, 8, 9], params)
    alone = small.sample(PROMPTS[2:3], 4, [7], params)
    assert [s.text for s in together[2]] == [s.text for s in alone[0]]
    np.testing.assert_allclose([s.logprob for s in together[2]], [s.logprob for s in alone[0]], atol=1e-5)


def test_sampling_follows_the_model_distribution(small):
    """Empirical first-token frequencies match softmax(logits / T)."""
    params = SamplingParams(1.0, 1.0, 1)
    samples = small.sample(PROMPTS[:1], 4000, [0], params)[0]
    ids = small.tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.inference_mode():
        logits = small.model(**ids).logits[0, -1]
    p = sampling_logprobs(logits, 1.0, 1.0).exp().numpy()
    for tok_id in np.argsort(-p)[:3]:
        text = small.tokenizer.decode([int(tok_id)])
        freq = np.mean([s.text == text or (s.finish == "eos" and tok_id == small.eos_id) for s in samples])
        assert abs(freq - p[tok_id]) < 4 * np.sqrt(p[tok_id] * (1 - p[tok_id]) / 4000) + 1e-3


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    lp = sampling_logprobs(logits, 1.0, 0.8)
    np.testing.assert_allclose(lp.exp().numpy()[0], [0.625, 0.375, 0, 0], atol=1e-6)
    lp = sampling_logprobs(logits, 1.0, 0.81)
    np.testing.assert_allclose(lp.exp().numpy()[0], [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], atol=1e-6)


def test_prefix_cache_reuses_earlier_steps_without_changing_log_probs():
    small = HFBackend(toy_model_path("small"), device="cpu")
    fresh = HFBackend(toy_model_path("small"), device="cpu", prefix_cache=0)
    params = SamplingParams(0.7, 1.0, 16)
    first = small.sample(PROMPTS[:3], 2, [1, 2, 3], params)
    hits_before = small.prefix_cache.hits
    longer = [p + group[0].text for p, group in zip(PROMPTS[:3], first)]
    cands = small.sample(longer + [PROMPTS[4]], 3, [4, 5, 6, 7], params)  # 3 hits, 1 miss
    assert small.prefix_cache.hits - hits_before == 3 and small.prefix_cache.reused_tokens > 0
    cached = small.score(longer + [PROMPTS[4]], cands, params)
    uncached = fresh.score(longer + [PROMPTS[4]], cands, params)
    for a, b, group in zip(cached, uncached, cands):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, [s.logprob for s in group], atol=1e-4)
    assert len(fresh.prefix_cache) == 0


def test_separator_rule_covers_merged_and_split_separators():
    """A step ends when its text contains "\\n\\n": tokens containing it stop at once
    (the toy tokenizer's "\\n\\n"); with a byte-level BPE where "\\n\\n" is two "\\n"
    tokens, "\\n" is a partial token after which the text is checked."""
    from transformers import AutoTokenizer

    from gsi.backends.law import separator_tokens
    from gsi.config import toy_model_path

    toy = AutoTokenizer.from_pretrained(toy_model_path("small"))
    assert separator_tokens(toy, "\n\n") == (toy.encode("\n\n", add_special_tokens=False), set())
    bpe = AutoTokenizer.from_pretrained(toy_model_path("prm"))
    stop, partial = separator_tokens(bpe, "\n\n")
    newline = bpe.encode("\n", add_special_tokens=False)
    assert stop == [] and set(newline) == partial
