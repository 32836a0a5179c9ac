"""Exactness: every method, run through the real loop and method code, against the
tilted target pi_B * exp(beta r) on enumerable worlds where the answer is known."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest

from analysis.exactness import RECORD_KEYS, Plan, measure, sweep, write_outputs
from gsi.decoding import Decoder
from gsi.grading import Grade
from gsi.exact import distributions as dist
from gsi.exact import montecarlo
from gsi.exact.world import misses_best, random_world
from gsi.methods import METHODS, MethodParams, StepScores
from gsi.methods.diagnostics import importance_diagnostics
from gsi.methods.selection import clean, tempered_probabilities
from gsi.metrics import compute_metrics
from gsi.types import CallStats, Problem, RunSettings, SamplingParams

SP = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=64)  # tempered: raw != tempered log-probs
NS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
GAPPED = random_world(seed=1, gap=0.6, num_steps=3)  # d_TV(pi_S, pi_B) = 0.18 at T = 0.7
EQUAL = random_world(seed=1, gap=0.0, num_steps=3)  # pi_S = pi_B


def tv_curve(world, method, beta=5.0, threshold=0.5, sampling=SP) -> list[float]:
    return [measure(world, method, n, beta, threshold, sampling=sampling)["tv"] for n in NS]


def assert_approaches_target(curve: list[float]) -> None:
    """The closeness check: TV to the target decreases with n and is < 0.02 at n = 256."""
    assert all(b < a for a, b in zip(curve, curve[1:])), f"TV does not decrease with n: {curve}"
    assert curve[-1] < 0.02, f"TV at n=256 is {curve[-1]:.4f}"


def assert_close_by_monte_carlo(record: dict) -> None:
    """The same check on a Monte-Carlo record: < 0.02 within two standard errors."""
    assert record["tv"] - 2 * record["tv_se"] < 0.02, record


# ---------------------------------------------------------------- the measurement itself
def test_count_vector_enumeration_equals_enumerating_every_tuple():
    """The multinomial shortcut gives the law of choose() over all K^n ordered draws."""
    laws = GAPPED.laws((), SP)
    params = MethodParams(5.0, 0.5)
    n = 3
    for name in ("gsi", "gsi_consistent", "rsd", "gsi_no_reject", "bon_small"):
        method = METHODS[name]
        brute = np.zeros(4)
        fallback = dist.method_step(method.fallback, laws, params, n, n).probs
        for draw in itertools.product(range(3), repeat=n):
            idx = np.array(draw)
            weight = float(np.prod(laws.small[idx]))
            scores = StepScores(laws.rewards[idx], np.log(laws.small[idx]), np.log(laws.big[idx]))
            probs = method.probabilities(scores, params)
            for i, p in enumerate(probs):
                ok = not method.rejects or method.accept_score(scores, i, params) >= params.threshold
                if ok:
                    brute[draw[i]] += weight * p
                else:
                    brute += weight * p * fallback
        np.testing.assert_allclose(dist.method_step(method, laws, params, n, n).probs, brute, atol=1e-12)


def test_likely_count_vectors_are_the_non_negligible_ones_in_order():
    """Pruning partial count vectors drops nothing the per-vector test keeps."""
    q = np.array([0.02, 0.5, 0.3, 0.18])
    for n in (1, 7, 60):
        log_fact = np.array([math.lgamma(i + 1) for i in range(n + 1)])
        full = []
        for c in dist.count_vectors(n, 4):
            lw = log_fact[n] - log_fact[c].sum() + float(c @ np.log(q))
            if lw >= dist.NEGLIGIBLE_LOG_WEIGHT:
                full.append((tuple(c), lw))
        got = [(tuple(c), lw) for c, lw in dist.likely_count_vectors(n, np.log(q))]
        assert [c for c, _ in got] == [c for c, _ in full]
        np.testing.assert_allclose([lw for _, lw in got], [lw for _, lw in full], rtol=0, atol=1e-9)
        assert 1.0 - sum(math.exp(lw) for _, lw in got) < 1e-9
    assert dist.num_likely_count_vectors(256, q) < math.comb(259, 3) // 10


def test_target_is_pi_b_tilted_by_exp_beta_r():
    laws = GAPPED.laws((), SP)
    expected = laws.big * np.exp(5.0 * laws.rewards)
    np.testing.assert_allclose(dist.target_step(laws, 5.0)[:-1], expected / expected.sum(), rtol=1e-12)
    assert dist.target_step(laws, math.inf)[np.argmax(laws.rewards)] == 1.0


@pytest.mark.parametrize("seed", [5, 3])  # seed 3: pi_B truncates some of pi_S's steps
@pytest.mark.parametrize(
    "name",
    [
        "gsi", "gsi_consistent", "gsi_no_reject", "rsd", "soft_bon_small", "soft_bon_big",
        "bon_small", "small", "big",
    ],
)
def test_the_loop_samples_the_exact_law(name, seed):
    """Monte Carlo through the Decoder agrees with the exact whole-solution law, cell by
    cell, on a 2-step tree with top-p truncation (pi_B = 0 on some proposals, so some
    problems stop with no valid candidate) and n_S != n_B."""
    world = random_world(seed=seed, gap=0.7, num_steps=3, depth=2)
    sampling = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=64)
    params = MethodParams(5.0, 0.5)
    exact = dist.method_solution(world, METHODS[name], params, 3, 5, sampling)
    replicas = 2000
    est = montecarlo.decode(world, METHODS[name], params, 3, 5, sampling, replicas, seed=3)
    p, q = exact.probs, est.probs
    assert abs(p.sum() - 1.0) < 1e-9
    bound = 4.5 * np.sqrt(np.clip(p * (1 - p), 0.0, None) / replicas) + 1e-9
    assert np.all(np.abs(q - p) <= bound), (p.round(4), q.round(4))
    assert abs(est.acceptance_rate - exact.acceptance_rate) < 0.05


# ---------------------------------------------------------------- the properties of the issue
@pytest.mark.parametrize("name", ["gsi_no_reject", "soft_bon_big"])
def test_tilted_methods_approach_the_target_as_n_grows(name):
    assert_approaches_target(tv_curve(GAPPED, name))


@pytest.mark.parametrize(
    "name", ["gsi_no_reject", "soft_bon_big", pytest.param("gsi_consistent", marks=pytest.mark.slow)]
)
def test_monte_carlo_through_the_loop_is_close_at_n_256(name):
    world = random_world(seed=1, gap=0.6)  # K = 4: too many count vectors at n = 256
    record = measure(world, name, 256, 5.0, 0.5, monte_carlo=True, replicas=5000, seed=1)
    assert record["estimator"] == "monte_carlo" and record["tv_se"] > 0
    assert_close_by_monte_carlo(record)


@pytest.mark.parametrize("name", ["soft_bon_small", "rsd"])
def test_small_model_proposals_stay_off_when_models_differ(name):
    curve = tv_curve(GAPPED, name)
    assert min(curve) > 0.1, curve
    with pytest.raises(AssertionError):
        assert_approaches_target(curve)


def test_soft_bon_small_tends_to_the_small_models_tilt():
    """Its limit is pi_S * exp(beta r), which is what keeps it off the target."""
    laws = GAPPED.laws((), SP)
    tilted_small = laws.small * np.exp(5.0 * laws.rewards)
    tilted_small = np.append(tilted_small / tilted_small.sum(), 0.0)
    law = dist.method_step(METHODS["soft_bon_small"], laws, MethodParams(5.0, 0.5), 256, 256).probs
    assert dist.tv(law, tilted_small) < 0.005
    assert dist.tv(tilted_small, dist.target_step(laws, 5.0)) > 0.3


@pytest.mark.parametrize(
    "name,threshold",
    [
        ("gsi_no_reject", 0.5),
        ("soft_bon_small", 0.5),
        ("soft_bon_big", 0.5),
        ("gsi", -math.inf),
        ("rsd", -math.inf),
        ("gsi", math.inf),
        ("rsd", math.inf),
    ],
)
def test_with_equal_models_every_tilted_method_is_exact_in_the_limit(name, threshold):
    assert_approaches_target(tv_curve(EQUAL, name, threshold=threshold))


@pytest.mark.parametrize("world", [EQUAL, GAPPED], ids=["equal", "gapped"])
@pytest.mark.parametrize("name", ["gsi", "rsd"])
def test_rejection_leaves_an_error_that_does_not_vanish(world, name):
    """With a threshold between the steps' scores the limit is target * (1[s >= u] + rho),
    rho = target(s < u): accepted steps come from the target restricted to s >= u, the
    rejected mass from the whole target again, so TV -> rho (1 - rho) for any n."""
    laws, beta, u = world.laws((), SP), 5.0, 0.5
    target = dist.target_step(laws, beta)[:-1]
    log_ratio = np.log(laws.big) - np.log(laws.small)
    score = laws.rewards + (log_ratio / beta if name == "gsi" else 0.0)
    rejected = score < u
    rho = float(target[rejected].sum())
    limit = np.append(target * (~rejected + rho), 0.0)
    assert rho * (1 - rho) > 0.05
    law = dist.method_step(METHODS[name], laws, MethodParams(beta, u), 256, 256).probs
    if name == "gsi" or world is EQUAL:  # rsd's accepted part tends to pi_S's tilt, not pi_B's
        assert dist.tv(law, limit) < 0.01
        assert abs(dist.tv(law, np.append(target, 0.0)) - rho * (1 - rho)) < 0.01


@pytest.mark.parametrize("world", [EQUAL, GAPPED], ids=["equal", "gapped"])
def test_a_rejection_that_refills_only_what_it_rejected_is_exact_in_the_limit(world):
    """gsi_consistent: same proposals and threshold as gsi, but the refill is restricted
    to the big candidates with s < u, so TV -> 0 where gsi's stays at rho (1 - rho)."""
    curve = tv_curve(world, "gsi_consistent")
    if world is EQUAL:
        assert_approaches_target(curve)
    else:  # n = 1 -> 2 may go up: a one-candidate refill pool is poor
        assert_approaches_target(curve[1:])
    assert min(tv_curve(world, "gsi")) > 0.1


def test_a_wrong_importance_weight_fails_the_closeness_check():
    """The checks above catch a broken weight: the sign of the ratio flipped, or raw
    (untempered) log-probs, which at temperature T scale log pi_B - log pi_S by T."""

    def flipped(scores, params):
        return tempered_probabilities(
            params.beta, scores.rewards, clean(scores.logp_proposal) - clean(scores.logp_target)
        )

    def raw(scores, params):
        ratio = clean(scores.logp_target) - clean(scores.logp_proposal)
        return tempered_probabilities(params.beta, scores.rewards, SP.temperature * ratio)

    good = METHODS["gsi_no_reject"]
    assert_approaches_target(tv_curve(GAPPED, good))
    for wrong in (flipped, raw):
        broken = dataclasses.replace(good, name=f"gsi_no_reject_{wrong.__name__}", probabilities=wrong)
        with pytest.raises(AssertionError):
            assert_approaches_target(tv_curve(GAPPED, broken))
        world = random_world(seed=1, gap=0.6)
        record = measure(world, broken, 256, 5.0, 0.5, monte_carlo=True, replicas=2000, sampling=SP)
        with pytest.raises(AssertionError):
            assert_close_by_monte_carlo(record)


def test_a_small_model_that_misses_the_best_step():
    """With pi_S(best) = 0, importance sampling can never produce the best step; GSI's
    rejection recovers it through the big model's fallback."""
    world = misses_best(eps=0.0)
    target = dist.target_step(world.laws((), SP), 5.0)
    for name in ("gsi_no_reject", "soft_bon_small"):
        r = measure(world, name, 64, 5.0, 0.5, sampling=SP)
        assert r["tv"] >= target[0] - 1e-12
    gsi = measure(world, "gsi", 64, 5.0, 0.9, sampling=SP)
    assert gsi["tv"] < target[0] - 0.05
    assert (
        gsi["expected_reward"] > measure(world, "gsi_no_reject", 64, 5.0, 0.5, sampling=SP)["expected_reward"]
    )


# ---------------------------------------------------------------- diagnostics on runs
def test_importance_diagnostics_of_one_step():
    scores = StepScores(np.zeros(4), np.log([0.1, 0.2, 0.3, 0.4]), np.log([0.4, 0.3, 0.2, 0.1]))
    assert importance_diagnostics(scores, np.full(4, 0.25))[0] == pytest.approx(4.0)
    assert importance_diagnostics(scores, np.array([0.0, 1.0, 0.0, 0.0]))[0] == pytest.approx(1.0)
    assert importance_diagnostics(scores, None)[1] == pytest.approx(0.0)
    assert importance_diagnostics(StepScores(np.zeros(2), np.zeros(2)), np.ones(2) / 2) == (None, None)


def test_loop_records_diagnostics_that_measure_the_model_gap():
    """Mean log pi_B - log pi_S of GSI's candidates estimates -KL(pi_S || pi_B)."""
    world = random_world(seed=1, gap=0.6)
    params = MethodParams(5.0, 0.5)
    laws = world.laws((), SP)
    metrics = []
    for name in ("gsi", "soft_bon_small"):
        rows: list[dict] = []
        settings = RunSettings(METHODS[name], params, SP, 8, 8, 1, 64, 0)
        decoder = Decoder(settings, world.small_lm(), world.big_lm(), world.reward(), lambda text, problem: Grade(None, False))
        decoder.run(
            [Problem(f"p{i}", world.prompt, "") for i in range(400)], lambda r: rows.append(r.to_json())
        )
        metrics.append(compute_metrics(rows, CallStats(), 1.0, len(rows)))
    gsi, small = metrics
    assert small["ess_mean"] is None and small["log_ratio_mean"] is None
    assert 1.0 <= gsi["ess_mean"] <= 8.0
    assert gsi["log_ratio_mean"] == pytest.approx(-dist.kl(laws.small, laws.big), abs=0.02)


# ---------------------------------------------------------------- the CLI's outputs
def test_sweep_writes_records_table_and_figures(tmp_path):
    tiny = Plan(
        betas=(5.0,),
        ns=(1, 4, 64),
        structured_ns=(1, 4),
        exact_max_n=4,
        replicas=300,
        seeds=1,
        gaps=(0.0, 1.0),
        distance_ns=(4,),
        thresholds=(0.0, 0.5),
        tree_depth=2,
        tree_ns=(1, 4),
        structured_exact_max_n=8,
        loop_check_n=64,
        rate_ns=(3,),
    )
    records = list(sweep(tiny))
    loop = [r for r in records if r["sweep"] == "loop_check"]
    assert {(r["method"], r["n"], r["estimator"]) for r in loop} == {
        ("gsi", 64, "monte_carlo"), ("gsi_consistent", 64, "monte_carlo")
    }
    assert len(loop) == 4  # two structured instances
    rate = [r for r in records if r["sweep"] == "rate"]
    assert {(r["method"], r["n"], r["estimator"]) for r in rate} == {
        ("gsi_consistent", 3, "exact"), ("gsi_no_reject", 3, "exact")
    }
    write_outputs(records, tmp_path)
    data = json.loads((tmp_path / "exactness.json").read_text())
    assert len(data) == len(records) and all(sorted(r) == sorted(RECORD_KEYS) for r in data)
    mc = [r for r in data if r["tv_se"] > 0]
    assert mc and all(r["n"] == 64 for r in mc)
    assert {r["method"] for r in data} >= {"gsi", "gsi_no_reject", "rsd", "soft_bon_small", "soft_bon_big"}
    assert all(r["threshold"] is None for r in data if r["method"] in ("gsi_no_reject", "soft_bon_big"))
    assert all(0.0 <= r["tv"] <= 1.0 and r["kl"] is not None and r["kl"] >= -1e-12 for r in data)
    lines = (tmp_path / "exactness.csv").read_text().splitlines()
    assert len(lines) == len(records) + 1
    for figure in ("tv_vs_n.png", "tv_vs_distance.png", "acceptance_vs_threshold.png"):
        assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_quick_cli_includes_n_256(tmp_path):
    from analysis.exactness import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "exactness.json").read_text())
    at_256 = [r for r in data if r["n"] == 256]
    assert {r["method"] for r in at_256} == {
        "gsi", "gsi_consistent", "gsi_no_reject", "rsd", "soft_bon_small", "soft_bon_big"
    }
    assert all(r["tv_se"] > 0 for r in at_256)
