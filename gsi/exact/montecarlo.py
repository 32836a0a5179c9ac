"""Monte-Carlo laws of whole solutions, measured by running the real decoding loop.

Each replica is a problem with its own id, so the loop gives it independent random
streams (``stream_seed``); the empirical law of the replicas' solutions estimates the
method's law for any n. Standard errors come from a multinomial bootstrap of the counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsi.decoding import Decoder
from gsi.grading import Grade
from gsi.exact.distributions import tv
from gsi.exact.world import World
from gsi.methods import Method, MethodParams
from gsi.types import Problem, ProblemResult, RunSettings, SamplingParams


@dataclass(frozen=True)
class Estimate:
    """Counts of each leaf (then "stopped early") over ``replicas`` decoded problems."""

    counts: np.ndarray
    replicas: int
    steps: int
    accepted_steps: int
    tokens_big: int = 0

    @property
    def probs(self) -> np.ndarray:
        return self.counts / self.replicas

    @property
    def acceptance_rate(self) -> float:
        return self.accepted_steps / self.steps if self.steps else 0.0


def decode(
    world: World,
    method: Method,
    params: MethodParams,
    n_small: int,
    n_big: int,
    sampling: SamplingParams,
    replicas: int,
    seed: int = 0,
    batch_size: int = 256,
) -> Estimate:
    """Run ``replicas`` copies of the world's problem through :class:`Decoder`."""
    settings = RunSettings(
        method=method,
        params=params,
        sampling=sampling,
        n_small=n_small,
        n_big=n_big,
        max_steps=world.depth,
        batch_size=batch_size,
        seed=seed,
    )
    small = world.small_lm() if method.proposer == "small" else None
    big = world.big_lm() if method.uses_big else None
    decoder = Decoder(settings, small, big, world.reward(), lambda text, problem: Grade(None, False))
    leaf_index = {leaf: i for i, leaf in enumerate(world.leaves)}
    counts = np.zeros(len(world.leaves) + 1)
    totals = {"steps": 0, "accepted": 0, "tokens_big": 0}

    def on_result(result: ProblemResult) -> None:
        if result.stop_reason == "error":
            raise RuntimeError(f"replica {result.problem_id} failed: {result.error}")
        path = world.path_of([s["text"] for s in result.steps_detail])
        counts[leaf_index[path] if len(path) == world.depth else -1] += 1
        totals["steps"] += result.steps
        totals["accepted"] += result.accepted_steps
        totals["tokens_big"] += result.tokens_big

    problems = (Problem(f"replica-{i}", world.prompt, "") for i in range(replicas))
    decoder.run(problems, on_result)
    return Estimate(counts, replicas, totals["steps"], totals["accepted"], totals["tokens_big"])


def tv_with_se(estimate: Estimate, target: np.ndarray, seed: int = 0, reps: int = 400) -> tuple[float, float]:
    """Plug-in TV of the empirical law to ``target`` and its bootstrap standard error.

    The plug-in TV is biased upwards by sampling noise (:func:`noise_floor` when the
    true TV is 0), so read small values against that floor.
    """
    p = estimate.probs
    boots = np.random.default_rng(seed).multinomial(estimate.replicas, p, size=reps) / estimate.replicas
    spread = 0.5 * np.abs(boots - target).sum(axis=1)
    return tv(p, target), float(spread.std(ddof=1))


def noise_floor(target: np.ndarray, replicas: int) -> float:
    """E[TV(empirical, target)] for ``replicas`` exact draws from ``target`` (normal
    approximation): the plug-in TV of a perfect method sits about this high."""
    p = np.asarray(target, dtype=np.float64)
    return float(0.5 * np.sum(np.sqrt(2.0 * p * (1.0 - p) / (np.pi * replicas))))
