"""+experiment=reference*: run on the toy world, every decision of the loop replayed through
an independent re-statement of the reference code's rules (j-geuter/GSI, speculative.py),
on the same arrays; and the rule options (threshold_on, tie_rule, stop_below) on their own."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import pytest

import gsi.decoding as decoding
from gsi.config import ConfigError, validate
from gsi.methods import METHODS, Method, MethodParams, StepScores, get_method
from gsi.methods.rules import accepts, below_floor

TOY = ["model=toy", "reward=toy_verifier", "dataset=toy_arith", "tracking=none",
       "n_small=4", "n_big=4", "max_steps=8", "max_step_tokens=16", "batch_size=1", "limit=30"]


# ---------------------------------------------------------------- the reference, re-stated
# Read from speculative.py (run_reward_tilted_decoding / run_reward_threshold_decoding), written
# here without this project's code: numpy's legacy choice(p) draws one uniform U and returns
# the first index whose normalised cumulative p exceeds U.
def ref_choice(p: np.ndarray, uniform: float) -> int:
    cdf = np.cumsum(p)
    cdf = cdf / cdf[-1]
    return int(np.searchsorted(cdf, uniform, side="right"))


def ref_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / max(e.sum(), 1e-10)


def ref_gsi(r, logp_small, logp_big, beta, thr, on_tilted, uniform):
    """(stop, index, accepted) of one GSI step: stop if max r < 0.1; softmax of
    beta*r + log pi_B - log pi_S; accept if (beta*r + log ratio if on_tilted else r) > thr."""
    if max(r) < 0.1:
        return True, None, False
    tilted = beta * r + logp_big - logp_small
    i = ref_choice(ref_softmax(tilted), uniform)
    value = tilted[i] if on_tilted else r[i]
    return False, i, bool(value > thr)


def ref_rsd(r, beta, thr, uniform):
    """(stop, index, accepted) of one RSD step: floor 0.1, softmax of beta*r, accept r >= thr."""
    if max(r) < 0.1:
        return True, None, False
    i = ref_choice(ref_softmax(beta * (r - r.max())), uniform)
    return False, i, bool(r[i] >= thr)


def ref_fallback(r, beta, uniform):
    """(stop, index) of the big model's soft best-of-n after a rejection (floor 0.1 too)."""
    if max(r) < 0.1:
        return True, None
    return False, ref_choice(ref_softmax(beta * (r - r.max())), uniform)


# ---------------------------------------------------------------- recording the loop's decisions
@dataclass(frozen=True)
class Recording(Method):
    """The real method; each decision is also kept with the uniform its draw will use."""

    log: list | None = None
    role: str = "proposal"

    def choose(self, scores, params, rng):
        uniform = copy.deepcopy(rng).random()
        choice = super().choose(scores, params, rng)
        self.log.append((self.role, scores, uniform, choice))
        return choice


def recording(method: Method, log: list, role: str) -> Recording:
    return Recording(**{f.name: getattr(method, f.name) for f in fields(method)}, log=log, role=role)


def decode_recorded(compose, monkeypatch, *overrides):
    from gsi.grading import get_grader
    from gsi.pipeline import build_components, load_problems

    cfg = compose(*overrides)
    settings = validate(cfg)
    log: list = []
    fallback = recording(settings.method.fallback, log, "fallback")
    method = replace(recording(settings.method, log, "proposal"), fallback_method=fallback)
    settings = replace(settings, method=method)
    models = build_components(cfg, True, True)
    results: list = []
    decoding.Decoder(settings, *models, get_grader(cfg.dataset.grader)).run(load_problems(cfg), results.append)
    return cfg, results, log


@pytest.mark.parametrize(
    "experiment,method,on_tilted",
    [("reference_slurm", "gsi", True), ("reference", "gsi", False), ("reference_rsd", "rsd", None)],
)
def test_reference_experiment_decides_as_the_reference_rules_problem_for_problem(
    compose, monkeypatch, experiment, method, on_tilted
):
    cfg, results, log = decode_recorded(compose, monkeypatch, f"+experiment={experiment}", *TOY)
    beta, thr = float(cfg.beta), float(cfg.threshold)
    assert cfg.method.name == method and cfg.stop_below == 0.1 and thr == 10.0
    decisions = iter(log)

    def replay_proposal():
        role, scores, uniform, choice = next(decisions)
        assert role == "proposal"
        r = scores.rewards
        if method == "gsi":
            want = ref_gsi(r, scores.logp_proposal, scores.logp_target, beta, thr, on_tilted, uniform)
        else:
            want = ref_rsd(r, beta, thr, uniform)
        assert (choice.stop, choice.index, choice.accepted) == want
        return want

    def replay_fallback():
        role, scores, uniform, choice = next(decisions)
        assert role == "fallback"
        want = ref_fallback(scores.rewards, beta, uniform)
        assert (choice.stop, choice.index) == want
        return want

    assert len(results) == 30
    seen = set()
    for result in results:  # batch_size=1: one problem after the other
        stopped = result.stop_reason == "low_reward"
        replayed = []
        for _ in range(result.steps + stopped):
            stop, _, ok = replay_proposal()
            if not stop and not ok:
                stop, _ = replay_fallback()
                replayed.append("stop" if stop else ("big", False))
            else:
                replayed.append("stop" if stop else ("small", True))
        recorded = [(d["source"], d["accepted"]) for d in result.steps_detail] + ["stop"] * stopped
        assert replayed == recorded, result.problem_id
        seen.update(replayed)
    assert next(decisions, None) is None
    assert "stop" in seen, "the 0.1 floor never fired: pick problems where it does"
    if method == "gsi" and on_tilted:
        assert {("small", True), ("big", False)} <= seen  # both branches exercised
    else:  # threshold 10 on a reward in [0, 1]: every step falls back
        assert ("small", True) not in seen and ("big", False) in seen


# ---------------------------------------------------------------- the rules on their own
R = np.array([0.2, 0.8, 0.5])
LS = np.array([-1.0, -2.0, -0.5])
LB = np.array([-1.5, -1.0, -3.0])


@pytest.mark.parametrize("beta", [0.0, 2.0, 20.0])
def test_threshold_on_picks_what_gsi_compares(beta):
    gsi = get_method("gsi")
    for i in range(3):
        on = {k: gsi.accept_score(StepScores(R, LS, LB), i, MethodParams(beta, 0.5, threshold_on=k))
              for k in ("tilted", "beta_tilted", "reward")}
        assert on["reward"] == R[i]
        assert on["beta_tilted"] == pytest.approx(beta * R[i] + LB[i] - LS[i], abs=1e-15)
        if beta > 0:
            assert on["tilted"] == pytest.approx(R[i] + (LB[i] - LS[i]) / beta, abs=1e-15)
    # the selection law does not depend on threshold_on
    p = [gsi.probabilities(StepScores(R, LS, LB), MethodParams(2.0, 0.5, threshold_on=k)) for k in ("tilted", "reward")]
    np.testing.assert_array_equal(p[0], p[1])


def test_tie_rules():
    assert accepts("gsi", 0.5, 0.5, "ge") and accepts("rsd", 0.5, 0.5, "ge")
    assert not accepts("gsi", 0.5, 0.5, "gt") and not accepts("rsd", 0.5, 0.5, "gt")
    assert not accepts("gsi", 0.5, 0.5, "reference") and accepts("rsd", 0.5, 0.5, "reference")
    assert accepts("gsi", 0.6, 0.5, "reference") and not accepts("rsd", 0.4, 0.5, "reference")


def test_reward_floor_stops_without_a_fallback_and_counts_nan_as_minus_inf():
    assert below_floor(np.array([0.05, np.nan]), 0.1) and not below_floor(np.array([0.1, 0.0]), 0.1)
    assert not below_floor(np.array([0.0]), None)
    rng = np.random.default_rng(0)
    for name in ("gsi", "rsd", "soft_bon_big"):
        c = METHODS[name].choose(StepScores(np.array([0.05, 0.09]), LS[:2], LB[:2]),
                                 MethodParams(2.0, 0.5, stop_below=0.1), rng)
        assert c.stop and c.index is None and not c.accepted
    c = METHODS["gsi"].choose(StepScores(np.array([0.05, 0.2]), LS[:2], LB[:2]), MethodParams(2.0, -math.inf, stop_below=0.1), rng)
    assert not c.stop and c.index is not None


def test_floor_ends_the_solution_with_low_reward_through_the_loop(compose):
    from gsi.pipeline import run

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        metrics = run(compose("tracking=none", "limit=6", "stop_below=2.0"), Path(tmp))
        import json

        rows = [json.loads(line) for line in (Path(tmp) / "results.jsonl").read_text().splitlines()]
    assert {r["stop_reason"] for r in rows} == {"low_reward"} and all(r["steps"] == 0 for r in rows)
    assert metrics["tokens_big"] == 0  # no fallback after a stop


@pytest.mark.parametrize(
    "override,message",
    [("threshold_on=tilt", "threshold_on='tilt' is not allowed: threshold_on must be one of tilted, beta_tilted, reward"),
     ("tie_rule=lt", "tie_rule='lt' is not allowed"),
     ("stop_below=nan", "stop_below=nan is not allowed"),
     ("beta=inf", "beta=inf is not allowed: beta must be finite with threshold_on=beta_tilted")],
)
def test_bad_rule_values_are_one_line(compose, override, message):
    extra = ["threshold_on=beta_tilted"] if override.startswith("beta") else []
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(compose(override, *extra))


def test_trailing_empty_step_reads_the_prm_after_the_candidate_as_the_reference_does():
    """reward_hub splits "a\n\nb\n\n" on "\n\n" into a, b, "" and reads the LAST tag: an empty
    step after each candidate that ends with the separator (not after an EOS-ended one)."""
    from gsi.rewards.reference_reading import TrailingEmptyStep
    from gsi.rewards.table import TableReward

    seen = []

    def table(question, previous, candidate):
        seen.append((tuple(previous), candidate))
        return 0.1 if candidate == "" else 0.6 if candidate.endswith("\n\n") else 0.9

    wrapped = TrailingEmptyStep(TableReward(table))
    (got,) = wrapped.score(["q"], [["1+1=2\n\n"]], [["2+2=4\n\n", "\\boxed{4}"]])
    np.testing.assert_array_equal(got, [0.1, 0.9])  # own reading would be [0.6, 0.9]
    assert (("1+1=2\n\n", "2+2=4\n\n"), "") in seen
