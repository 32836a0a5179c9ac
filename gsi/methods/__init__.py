"""Per-step decision policies of GSI.md as pure functions of arrays and a generator.

A :class:`Method` says which model proposes, how many candidates, which quantities
its decision needs (so the loop computes nothing else) and how it picks and accepts.
No method calls a model: the decoding loop does that and hands over the arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from gsi.methods import rules
from gsi.methods.selection import clean, draw, tempered_probabilities, tilted_scores
from gsi.types import Source

__all__ = ["Choice", "Method", "MethodParams", "StepScores", "METHODS", "get_method", "FALLBACK"]


@dataclass(frozen=True)
class StepScores:
    """What the loop measured for one problem's candidates at one step."""

    rewards: np.ndarray | None = None
    logp_proposal: np.ndarray | None = None  # under the law the candidates came from
    logp_target: np.ndarray | None = None  # under pi_B (scored), for importance weights
    logp_small: np.ndarray | None = None  # under pi_S (scored) of big-model candidates (gsi_consistent)


@dataclass(frozen=True)
class MethodParams:
    """``threshold_on``, ``tie_rule``, ``stop_below``: see :mod:`gsi.methods.rules`."""

    beta: float
    threshold: float
    threshold_on: str = "tilted"
    tie_rule: str = "ge"
    stop_below: float | None = None


@dataclass(frozen=True)
class Choice:
    """The decision for one problem: which candidate, and whether it is accepted.

    ``index`` is None when no candidate is valid (every weight -inf).
    ``score`` is the quantity compared with the threshold (tilted or raw reward).
    ``stop`` is True when every candidate's reward is below ``MethodParams.stop_below``:
    the solution ends here, without a fallback.
    """

    index: int | None
    accepted: bool
    probabilities: np.ndarray | None
    score: float | None = None
    stop: bool = False


Probabilities = Callable[[StepScores, MethodParams], "np.ndarray | None"]
AcceptScore = Callable[[StepScores, int, MethodParams], float]


@dataclass(frozen=True)
class Method:
    name: str
    proposer: Source
    n_param: Literal["n_small", "n_big", "one"]
    needs_reward: bool
    needs_target_logprobs: bool
    probabilities: Probabilities
    accept_score: AcceptScore | None = None  # None: never rejects
    needs_small_logprobs: bool = False  # pi_S scores of the (big-model) candidates
    fallback_method: "Method | None" = None  # what a rejected step runs; None: FALLBACK

    @property
    def rejects(self) -> bool:
        return self.accept_score is not None

    @property
    def fallback(self) -> "Method":
        """The method the loop runs with n_B big-model candidates on a rejected step."""
        return self.fallback_method or FALLBACK

    @property
    def uses_big(self) -> bool:
        return self.proposer == "big" or self.rejects or self.needs_target_logprobs

    def num_candidates(self, n_small: int, n_big: int) -> int:
        return {"n_small": n_small, "n_big": n_big, "one": 1}[self.n_param]

    def choose(self, scores: StepScores, params: MethodParams, rng: np.random.Generator) -> Choice:
        """Pick a candidate with the method's probabilities and apply its accept rule."""
        if rules.below_floor(scores.rewards, params.stop_below):
            return Choice(None, False, None, stop=True)
        probs = self.probabilities(scores, params)
        if probs is None:
            return Choice(None, False, None)
        index = draw(probs, rng)
        if self.accept_score is None:
            return Choice(index, True, probs)
        score = self.accept_score(scores, index, params)
        return Choice(index, rules.accepts(self.name, score, params.threshold, params.tie_rule), probs, score)


# ---------------------------------------------------------------- decisions
def _log_ratio(scores: StepScores) -> np.ndarray:
    assert scores.logp_target is not None and scores.logp_proposal is not None
    return clean(scores.logp_target) - clean(scores.logp_proposal)


def gsi_probabilities(scores: StepScores, params: MethodParams) -> np.ndarray | None:
    """softmax(beta * s) with s = r + (log pi_B - log pi_S) / beta, i.e. importance
    sampling of the tilted target: weights exp(beta r) * pi_B / pi_S."""
    assert scores.rewards is not None
    return tempered_probabilities(params.beta, scores.rewards, _log_ratio(scores))


def tilted_reward(scores: StepScores, index: int, params: MethodParams) -> float:
    """GSI's s_i = r_i + (log pi_B - log pi_S) / beta, compared with the threshold."""
    assert scores.rewards is not None
    one = slice(index, index + 1)
    return float(tilted_scores(scores.rewards[one], _log_ratio(scores)[one], params.beta)[0])


def restricted_probabilities(scores: StepScores, params: MethodParams) -> np.ndarray | None:
    """gsi_consistent's fallback: softmax(beta r) over the big model's candidates that GSI
    could not have accepted — score below u under ``threshold_on`` and ``tie_rule`` (the
    tilted reward s by default, with pi_S's scores of these candidates), or pi_S(y) = 0 (GSI never proposes
    y) — or over all valid candidates if none qualifies.

    Acceptance keeps pi_beta,B on {s >= u} and this refills the rejected mass
    rho = pi_beta,B(s < u) with pi_beta,B(. | s < u), so the step law tends to pi_beta,B.
    beta = 0 / inf follow :func:`tilted_reward` and :func:`tempered_probabilities`.
    """
    assert scores.rewards is not None and scores.logp_proposal is not None and scores.logp_small is not None
    rewards, log_small = clean(scores.rewards), clean(scores.logp_small)
    delta = clean(scores.logp_proposal) - log_small
    if params.threshold_on == "reward":
        s = rewards
    elif params.threshold_on == "beta_tilted":
        s = np.array([rules.beta_tilted(float(r), float(d), params.beta) for r, d in zip(rewards, delta)])
    else:
        s = tilted_scores(rewards, delta, params.beta)
    # the complement of what acceptance would have taken, under the same score and tie rule
    u, tie = params.threshold, params.tie_rule
    rejected = ~rules.accepts_each("gsi_consistent", s, u, tie)
    valid = rewards > -np.inf
    eligible = (rejected | (log_small == -np.inf)) & valid
    if not eligible.any():
        eligible = valid
    return tempered_probabilities(params.beta, np.where(eligible, rewards, -np.inf))


def gsi_score(scores: StepScores, index: int, params: MethodParams) -> float:
    """What GSI compares with the threshold, by ``params.threshold_on``: the tilted reward
    s (default), beta*s (the reference's --threshold-on-tilted) or the raw reward."""
    if params.threshold_on == "reward":
        return raw_reward(scores, index, params)
    if params.threshold_on == "beta_tilted":
        assert scores.rewards is not None
        r = float(clean(scores.rewards)[index])
        return rules.beta_tilted(r, float(_log_ratio(scores)[index]), params.beta)
    return tilted_reward(scores, index, params)


def soft_bon_probabilities(scores: StepScores, params: MethodParams) -> np.ndarray | None:
    assert scores.rewards is not None
    return tempered_probabilities(params.beta, scores.rewards)


def hard_bon_probabilities(scores: StepScores, params: MethodParams) -> np.ndarray | None:
    assert scores.rewards is not None
    return tempered_probabilities(math.inf, scores.rewards)


def single_probabilities(scores: StepScores, params: MethodParams) -> np.ndarray:
    return np.ones(1)


def raw_reward(scores: StepScores, index: int, params: MethodParams) -> float:
    assert scores.rewards is not None
    return float(clean(scores.rewards)[index])


# ---------------------------------------------------------------- registry
METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "gsi", proposer="small", n_param="n_small", needs_reward=True, needs_target_logprobs=True,
            probabilities=gsi_probabilities, accept_score=gsi_score,
        ),
        Method(
            "gsi_no_reject", proposer="small", n_param="n_small", needs_reward=True,
            needs_target_logprobs=True, probabilities=gsi_probabilities,
        ),
        Method(
            "gsi_consistent", proposer="small", n_param="n_small", needs_reward=True,
            needs_target_logprobs=True, probabilities=gsi_probabilities, accept_score=gsi_score,
            fallback_method=Method(
                "restricted_soft_bon_big", proposer="big", n_param="n_big", needs_reward=True,
                needs_target_logprobs=False, probabilities=restricted_probabilities, needs_small_logprobs=True,
            ),
        ),
        Method(
            "rsd", proposer="small", n_param="n_small", needs_reward=True, needs_target_logprobs=False,
            probabilities=soft_bon_probabilities, accept_score=raw_reward,
        ),
        Method(
            "soft_bon_small", proposer="small", n_param="n_small", needs_reward=True,
            needs_target_logprobs=False, probabilities=soft_bon_probabilities,
        ),
        Method(
            "soft_bon_big", proposer="big", n_param="n_big", needs_reward=True, needs_target_logprobs=False,
            probabilities=soft_bon_probabilities,
        ),
        Method(
            "bon_small", proposer="small", n_param="n_small", needs_reward=True, needs_target_logprobs=False,
            probabilities=hard_bon_probabilities,
        ),
        Method(
            "bon_big", proposer="big", n_param="n_big", needs_reward=True, needs_target_logprobs=False,
            probabilities=hard_bon_probabilities,
        ),
        Method(
            "small", proposer="small", n_param="one", needs_reward=False, needs_target_logprobs=False,
            probabilities=single_probabilities,
        ),
        Method(
            "big", proposer="big", n_param="one", needs_reward=False, needs_target_logprobs=False,
            probabilities=single_probabilities,
        ),
    ]
}

# What a rejected step falls back to: soft best-of-n_B with the big model.
FALLBACK = METHODS["soft_bon_big"]


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method.name={name!r} is not a method; choose from {sorted(METHODS)}") from None
