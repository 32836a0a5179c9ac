"""gsi_consistent: GSI whose rejection refills only the mass it rejected.

Exact probabilities of its fallback decision (no models), and the loop's extra call:
pi_S scores the big model's candidates only for this method and only for rejected
problems, timed under the small model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gsi.exact import distributions as dist
from gsi.backends.table import TableLM
from gsi.exact.world import random_world
from gsi.methods import FALLBACK, MethodParams, StepScores, get_method
from gsi.types import SamplingParams
from tests.test_decoding import decode

R = np.array([0.2, 0.8, 0.5, 0.9])
LB = np.log([0.1, 0.2, 0.3, 0.4])  # the big candidates' own log-probs
LS = np.log([0.3, 0.1, 0.2, 0.4])  # pi_S's scores of them
FB = get_method("gsi_consistent").fallback


def fallback_probs(beta, u, rewards=R, lb=LB, ls=LS):
    return FB.probabilities(StepScores(rewards, lb, None, ls), MethodParams(beta, u))


def softmax_over(mask, beta, rewards=R):
    w = np.where(mask, np.exp(beta * rewards), 0.0)
    return w / w.sum()


def test_the_method_is_gsi_with_a_restricted_fallback():
    m, gsi = get_method("gsi_consistent"), get_method("gsi")
    assert (m.proposer, m.n_param, m.needs_reward, m.needs_target_logprobs, m.rejects) == (
        "small", "n_small", True, True, True
    )
    assert m.probabilities is gsi.probabilities and m.accept_score is gsi.accept_score
    assert gsi.fallback is FALLBACK and not FALLBACK.needs_small_logprobs
    assert FB.proposer == "big" and FB.n_param == "n_big" and FB.needs_small_logprobs and not FB.rejects


@pytest.mark.parametrize("beta,u", [(2.0, 0.5), (2.0, 0.85), (0.5, 1.0), (10.0, 0.3)])
def test_fallback_is_soft_best_of_n_over_the_candidates_gsi_would_reject(beta, u):
    s = R + (LB - LS) / beta  # GSI's tilted reward of each big candidate
    mask = s < u
    expected = softmax_over(mask if mask.any() else np.ones(4, bool), beta)
    np.testing.assert_allclose(fallback_probs(beta, u), expected, rtol=1e-12)
    # the restriction is exactly GSI's accept rule applied to these candidates
    gsi = get_method("gsi")
    scores = StepScores(R, LS, LB)
    rejected = [not gsi.accept_score(scores, i, MethodParams(beta, u)) >= u for i in range(4)]
    assert list(mask) == rejected


def test_fallback_with_none_rejectable_uses_every_candidate():
    np.testing.assert_allclose(fallback_probs(2.0, -5.0), softmax_over(np.ones(4, bool), 2.0), rtol=1e-12)


def test_beta_zero_restricts_by_the_sign_of_the_log_ratio_and_picks_uniformly():
    # beta = 0: s = r + sign(log pi_B - log pi_S) * inf, as tilted_reward; softmax(0 r) is uniform
    mask = (LB - LS < 0) | ((LB == LS) & (R < 0.5))
    np.testing.assert_allclose(fallback_probs(0.0, 0.5), mask / mask.sum(), rtol=1e-12)
    assert list(mask) == [True, False, False, False]  # only candidate 0 has pi_B < pi_S


def test_beta_zero_exact_cases():
    lb, ls = np.log([0.1, 0.2, 0.4, 0.4]), np.log([0.3, 0.1, 0.4, 0.4])
    r = np.array([0.2, 0.8, 0.3, 0.9])  # candidate 2: equal log-probs and r < u; 3: equal and r >= u
    np.testing.assert_allclose(fallback_probs(0.0, 0.5, r, lb, ls), [0.5, 0.0, 0.5, 0.0], rtol=1e-12)


def test_beta_inf_is_argmax_of_reward_among_those_below_the_threshold():
    # beta = inf: s = r, so the pool is r < u and the pick its best reward
    np.testing.assert_array_equal(fallback_probs(math.inf, 0.85), [0, 1, 0, 0])
    np.testing.assert_array_equal(fallback_probs(math.inf, 0.1), [0, 0, 0, 1])  # none below: all


def test_a_step_the_small_model_cannot_propose_is_always_in_the_pool():
    ls = np.array([np.log(0.3), np.log(0.1), np.log(0.2), -np.inf])
    probs = fallback_probs(2.0, -1.0, ls=ls)  # every finite s is >= -1
    np.testing.assert_array_equal(probs, [0, 0, 0, 1])


def test_invalid_rewards_never_picked():
    r = np.array([np.nan, 0.8, 0.5, 0.9])
    probs = fallback_probs(2.0, 10.0, rewards=r)
    assert probs[0] == 0.0 and probs.sum() == pytest.approx(1.0)
    assert fallback_probs(2.0, 10.0, rewards=np.full(4, np.nan)) is None


def test_exact_fallback_law_equals_enumerating_every_tuple():
    sp = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=64)
    laws = random_world(seed=1, gap=0.6, num_steps=3).laws((), sp)
    params, n = MethodParams(5.0, 0.5), 4
    brute = np.zeros(4)
    for draw in itertools.product(range(3), repeat=n):
        idx = np.array(draw)
        scores = StepScores(laws.rewards[idx], np.log(laws.big[idx]), None, np.log(laws.small[idx]))
        p = FB.probabilities(scores, params)
        for i, q in enumerate(p):
            brute[draw[i]] += float(np.prod(laws.big[idx])) * q
    np.testing.assert_allclose(dist.method_step(FB, laws, params, n, n).probs, brute, atol=1e-12)


def test_fallback_tends_to_the_target_restricted_to_the_rejected_steps():
    sp = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=64)
    laws = random_world(seed=1, gap=0.6, num_steps=3).laws((), sp)
    beta, u = 5.0, 0.5
    target = dist.target_step(laws, beta)[:-1]
    s = laws.rewards + (np.log(laws.big) - np.log(laws.small)) / beta
    low = s < u
    assert 0 < low.sum() < 3
    restricted = np.append(np.where(low, target, 0.0) / target[low].sum(), 0.0)
    law = dist.method_step(FB, laws, MethodParams(beta, u), 256, 256).probs
    assert dist.tv(law, restricted) < 0.01


# ---------------------------------------------------------------- the loop's extra call
def small_scores(small):
    return [n for kind, n in small.calls if kind == "score"]


def test_loop_scores_big_candidates_with_the_small_model_only_when_rejected(compose):
    results, stats, small, big = decode(compose, "gsi_consistent", batch_size=64, n_small=2, threshold=1.0)
    rejected = sum(r.steps - r.accepted_steps for r in results)
    assert 0 < rejected < sum(r.steps for r in results)
    fallback_samples = [n for kind, n in big.calls if kind == "sample"]
    assert small_scores(small) == fallback_samples  # one pi_S scoring per fallback, same problems
    assert sum(small_scores(small)) == rejected
    samples = [n for kind, n in small.calls if kind == "sample"]
    assert stats.calls_small == len(samples) + len(small_scores(small))  # timed under the small model


@pytest.mark.parametrize("method", ["gsi", "gsi_no_reject", "rsd", "soft_bon_small"])
def test_other_methods_never_score_with_the_small_model(compose, method):
    _, _, small, _ = decode(compose, method)
    assert small_scores(small) == []


def test_no_rejection_no_extra_call_and_same_results_as_gsi(compose):
    from tests.test_decoding import strip_timing

    res, _, small, _ = decode(compose, "gsi_consistent", threshold="-inf")
    assert small_scores(small) == []
    assert strip_timing(res) == strip_timing(decode(compose, "gsi", threshold="-inf")[0])


class Logged:
    """A model that records the steps it samples and the steps it is asked to score
    (per prefix), and does both itself."""

    def __init__(self, model):
        self.model, self.sampled, self.scored = model, [], []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def sample(self, prompts, n, seeds, params):
        out = self.model.sample(prompts, n, seeds, params)
        self.sampled += list(zip(prompts, out))
        return out

    def score(self, prompts, steps, params):
        self.scored += list(zip(prompts, steps))
        return self.model.score(prompts, steps, params)


def tokens_by_problem(pairs, problems, count) -> dict[str, int]:
    """Tokens of the logged steps, per problem (the problem whose prompt starts the prefix)."""
    out = {p.id: 0 for p in problems}
    for prefix, steps in pairs:
        owner = max((p for p in problems if prefix.startswith(p.prompt)), key=lambda p: len(p.prompt))
        out[owner.id] += sum(count(s) for s in steps)
    return out


def decode_logged(compose, method, small, big, reward, problems, *overrides):
    from gsi.config import validate
    from gsi.decoding import Decoder
    from gsi.grading import get_grader

    cfg = compose(f"method={method}", *overrides)
    small, big = Logged(small), Logged(big)
    results: list = []
    Decoder(validate(cfg), small, big, reward, get_grader(cfg.dataset.grader)).run(problems, results.append)
    return sorted(results, key=lambda r: r.problem_id), small, big


def check_token_counts(results, small, big, problems, count) -> None:
    """tokens_small = pi_S's generated tokens + the tokens of the big candidates it scored;
    tokens_big = pi_B's generated tokens; pi_S scores only on rejected steps."""
    generated = tokens_by_problem(small.sampled, problems, lambda s: s.num_tokens)
    scored = tokens_by_problem(small.scored, problems, count)
    big_generated = tokens_by_problem(big.sampled, problems, lambda s: s.num_tokens)
    assert sum(scored.values()) > 0
    for r in results:
        assert r.tokens_small == generated[r.problem_id] + scored[r.problem_id], r.problem_id
        assert r.tokens_big == big_generated[r.problem_id]
        if r.accepted_steps == r.steps:
            assert scored[r.problem_id] == 0


def test_accepted_steps_match_gsi_and_tokens_small_count_what_pi_s_scored(compose):
    from gsi.toy.verifier import ToyVerifier
    from tests.helpers import toy_table
    from tests.test_decoding import PROBLEMS

    small, big = TableLM(toy_table(0.6), "small"), TableLM(toy_table(0.95), "big")
    one_step = ("n_small=3", "n_big=2", "max_steps=1")  # same proposals and decisions (same streams)
    mine, s_log, _ = decode_logged(compose, "gsi_consistent", small, big, ToyVerifier(), PROBLEMS, *one_step)
    theirs, _, _ = decode_logged(compose, "gsi", small, big, ToyVerifier(), PROBLEMS, *one_step)
    assert [a.accepted_steps for a in mine] == [b.accepted_steps for b in theirs]
    assert [a.tokens_big for a in mine] == [b.tokens_big for b in theirs]
    results, s_log, b_log = decode_logged(
        compose, "gsi_consistent", small, big, ToyVerifier(), PROBLEMS, "n_small=2", "threshold=1.0"
    )
    check_token_counts(results, s_log, b_log, PROBLEMS, lambda s: s.num_tokens)


def test_tokens_small_count_the_big_candidates_the_real_small_model_scored(compose):
    """On the toy models (HF backend), each scored candidate counted with pi_S's own
    encoding of it (text, then EOS if the big model ended there)."""
    from gsi.pipeline import build_components, load_problems

    run = ("limit=4", "threshold=1.0", "n_small=2", "n_big=2", "max_steps=2", "max_step_tokens=12")
    cfg = compose("method=gsi_consistent", *run)
    problems = load_problems(cfg)
    models = build_components(cfg, True, True)
    results, s_log, b_log = decode_logged(compose, "gsi_consistent", *models, problems, *run)
    check_token_counts(results, s_log, b_log, problems, lambda s: len(models[0]._encode_step(s)))


def test_fallback_probabilities_are_valid_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 10))
        r = rng.random(n)
        r[rng.random(n) < 0.2] = np.nan
        lb, ls = -3 * rng.random(n), -3 * rng.random(n)
        ls[rng.random(n) < 0.2] = -np.inf
        beta = float(rng.choice([0.0, 0.7, 5.0, 1e6, math.inf]))
        p = fallback_probs(beta, float(rng.normal(0.5, 1.0)), r, lb, ls)
        valid = ~np.isnan(r)
        if p is None:
            assert not valid.any()
            continue
        assert np.all(p >= 0) and abs(p.sum() - 1) < 1e-9 and np.all(p[~valid] == 0)
