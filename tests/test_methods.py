"""Exact probabilities and numerics of every method's decision (no models involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gsi.methods import METHODS, MethodParams, StepScores, get_method
from gsi.methods.selection import draw, softmax_from_logits

R = np.array([0.2, 0.8, 0.5])
LS = np.array([-1.0, -2.0, -0.5])
LB = np.array([-1.5, -1.0, -3.0])


def naive(weights):
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def probs(name, rewards=R, ls=LS, lb=LB, beta=2.0, threshold=0.5):
    return get_method(name).probabilities(StepScores(rewards, ls, lb), MethodParams(beta, threshold))


def test_registry_has_every_method_of_gsi_md():
    assert set(METHODS) == {
        "gsi", "gsi_no_reject", "gsi_consistent", "rsd", "soft_bon_small", "soft_bon_big",
        "bon_small", "bon_big", "small", "big",
    }


def test_gsi_is_self_normalised_importance_sampling_of_the_tilted_target():
    expected = naive(np.exp(2.0 * R) * np.exp(LB) / np.exp(LS))
    np.testing.assert_allclose(probs("gsi"), expected, rtol=1e-12)
    np.testing.assert_allclose(probs("gsi_no_reject"), expected, rtol=1e-12)


def test_gsi_probabilities_equal_softmax_of_beta_times_tilted_reward():
    beta = 3.0
    s = R + (LB - LS) / beta
    np.testing.assert_allclose(probs("gsi", beta=beta), naive(np.exp(beta * s)), rtol=1e-12)


@pytest.mark.parametrize("name", ["rsd", "soft_bon_small", "soft_bon_big"])
def test_soft_best_of_n_is_softmax_of_beta_r(name):
    np.testing.assert_allclose(probs(name, beta=1.5), naive(np.exp(1.5 * R)), rtol=1e-12)


@pytest.mark.parametrize("name", ["bon_small", "bon_big"])
def test_hard_best_of_n_is_argmax_with_uniform_ties(name):
    np.testing.assert_array_equal(probs(name), [0, 1, 0])
    np.testing.assert_array_equal(probs(name, rewards=np.array([0.9, 0.1, 0.9])), [0.5, 0, 0.5])


def test_gsi_accepts_by_tilted_reward_and_rsd_by_raw_reward():
    rng = np.random.default_rng(0)
    beta, u = 2.0, 0.5
    gsi, rsd = get_method("gsi"), get_method("rsd")
    for _ in range(200):
        c = gsi.choose(StepScores(R, LS, LB), MethodParams(beta, u), rng)
        s = R[c.index] + (LB[c.index] - LS[c.index]) / beta
        assert c.score == pytest.approx(s)
        assert c.accepted == (s >= u)
        c = rsd.choose(StepScores(R, LS), MethodParams(beta, u), rng)
        assert c.score == R[c.index] and c.accepted == (R[c.index] >= u)


def test_methods_without_rejection_always_accept():
    rng = np.random.default_rng(0)
    for name in ["gsi_no_reject", "soft_bon_small", "soft_bon_big", "bon_small", "bon_big"]:
        c = get_method(name).choose(StepScores(R, LS, LB), MethodParams(2.0, 1e9), rng)
        assert c.accepted and c.index is not None


def test_needs_are_declared_so_the_loop_skips_the_rest():
    assert get_method("gsi").needs_target_logprobs and get_method("gsi").rejects
    assert not get_method("soft_bon_small").needs_target_logprobs
    assert not get_method("soft_bon_small").uses_big
    assert not get_method("small").needs_reward and not get_method("small").uses_big
    assert get_method("rsd").uses_big and not get_method("rsd").needs_target_logprobs
    assert get_method("big").proposer == "big" and get_method("big").num_candidates(8, 5) == 1
    assert get_method("soft_bon_big").num_candidates(8, 5) == 5
    assert get_method("gsi").num_candidates(8, 5) == 8


def test_draws_follow_the_probabilities():
    p = np.array([0.1, 0.0, 0.6, 0.3])
    rng = np.random.default_rng(1)
    counts = np.bincount([draw(p, rng) for _ in range(40_000)], minlength=4) / 40_000
    assert counts[1] == 0
    np.testing.assert_allclose(counts, p, atol=0.01)


# ------------------------------------------------------------------ numerics
def test_beta_zero_is_uniform_soft_bon_and_pure_importance_sampling_for_gsi():
    np.testing.assert_allclose(probs("soft_bon_small", beta=0.0), [1 / 3] * 3)
    np.testing.assert_allclose(probs("gsi", beta=0.0), naive(np.exp(LB - LS)), rtol=1e-12)
    c = get_method("gsi").choose(StepScores(R, LS, LB), MethodParams(0.0, 0.5), np.random.default_rng(0))
    # beta = 0: s = r + delta / 0 is +inf or -inf by the sign of delta
    assert c.score in (math.inf, -math.inf)
    assert c.accepted == (LB[c.index] > LS[c.index])


def test_huge_beta_does_not_overflow():
    r = np.array([0.5, 0.501, 0.3])
    for name in ["gsi", "soft_bon_small", "rsd"]:
        p = probs(name, rewards=r, beta=1e6)
        assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
        assert p[1] == pytest.approx(1.0)


def test_nan_and_minus_inf_rewards_get_zero_probability():
    r = np.array([np.nan, 0.3, -np.inf, 0.1])
    ls, lb = np.zeros(4), np.zeros(4)
    for beta in [0.0, 1.0, 1e6, math.inf]:
        for name in ["gsi", "soft_bon_small", "bon_small"]:
            p = probs(name, rewards=r, ls=ls, lb=lb, beta=beta)
            assert p[0] == 0 and p[2] == 0 and p.sum() == pytest.approx(1.0)


def test_all_invalid_rewards_reject_or_return_no_choice():
    r = np.array([np.nan, -np.inf])
    for name in ["gsi", "rsd", "soft_bon_small", "bon_big"]:
        c = get_method(name).choose(StepScores(r, np.zeros(2), np.zeros(2)), MethodParams(1.0, 0.0), np.random.default_rng(0))
        assert c.index is None and not c.accepted


def test_big_model_cannot_produce_candidate_gets_zero_weight():
    p = probs("gsi", lb=np.array([-np.inf, -1.0, -1.0]))
    assert p[0] == 0 and p.sum() == pytest.approx(1.0)


def test_all_equal_scores_are_uniform():
    r = np.full(5, 0.7)
    for name in ["soft_bon_small", "bon_small", "rsd"]:
        np.testing.assert_allclose(probs(name, rewards=r, beta=3.0), [0.2] * 5)
    np.testing.assert_allclose(
        probs("gsi", rewards=r, ls=np.zeros(5), lb=np.zeros(5), beta=3.0), [0.2] * 5
    )


def test_softmax_is_log_sum_exp_stable():
    p = softmax_from_logits(np.array([1e308, 1e308 - 1e292, -1e308]))
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    assert softmax_from_logits(np.array([-np.inf, -np.inf])) is None
