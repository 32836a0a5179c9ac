"""Property-based tests of the methods' decisions (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gsi.methods import METHODS, MethodParams, StepScores, get_method

finite = st.floats(-30, 30, allow_nan=False)
reward = st.one_of(st.floats(0, 1), st.just(float("nan")), st.just(-math.inf))
betas = st.one_of(st.floats(0, 1e6), st.just(math.inf))


@st.composite
def step(draw, valid_only=False):
    n = draw(st.integers(1, 12))
    r = draw(st.lists(st.floats(0, 1) if valid_only else reward, min_size=n, max_size=n))
    ls = draw(st.lists(finite, min_size=n, max_size=n))
    lb = draw(st.lists(finite, min_size=n, max_size=n))
    return StepScores(np.array(r), np.array(ls), np.array(lb))


@settings(max_examples=200, deadline=None)
@given(step(), betas, st.sampled_from(sorted(METHODS)))
def test_probabilities_are_valid_and_sum_to_one(scores, beta, name):
    method = get_method(name)
    if name in ("small", "big"):
        scores = StepScores(scores.rewards[:1], scores.logp_proposal[:1], scores.logp_target[:1])
    p = method.probabilities(scores, MethodParams(beta, 0.5))
    valid = ~np.isnan(scores.rewards) & (scores.rewards > -np.inf)
    if p is None:
        assert not valid.any()
        return
    assert np.all(p >= 0) and abs(p.sum() - 1) < 1e-9
    if method.needs_reward:
        assert np.all(p[~valid] == 0)


@settings(max_examples=200, deadline=None)
@given(step(valid_only=True), st.floats(0, 50), st.floats(-5, 5))
def test_soft_bon_is_invariant_to_a_constant_added_to_all_rewards(scores, beta, c):
    m = get_method("soft_bon_small")
    a = m.probabilities(scores, MethodParams(beta, 0.5))
    b = m.probabilities(StepScores(scores.rewards + c), MethodParams(beta, 0.5))
    np.testing.assert_allclose(a, b, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(step(valid_only=True))
def test_beta_to_infinity_matches_argmax(scores):
    r = scores.rewards
    gap = np.sort(np.unique(r))
    assume(len(gap) <= 1 or np.min(np.diff(gap)) >= 1e-3)  # near-ties need an even larger beta
    big = get_method("soft_bon_small").probabilities(scores, MethodParams(1e7, 0.5))
    hard = get_method("bon_small").probabilities(scores, MethodParams(1.0, 0.5))
    np.testing.assert_allclose(big, hard, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(step(valid_only=True), st.floats(0, 100))
def test_gsi_with_equal_models_is_soft_bon_on_rewards(scores, beta):
    same = StepScores(scores.rewards, scores.logp_proposal, scores.logp_proposal)
    g = get_method("gsi").probabilities(same, MethodParams(beta, 0.5))
    s = get_method("soft_bon_small").probabilities(same, MethodParams(beta, 0.5))
    np.testing.assert_allclose(g, s, atol=1e-12)
