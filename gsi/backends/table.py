"""A language model given by an explicit table of next-step probabilities.

For tests and exact analysis: ``table(prefix)`` returns ``{step_text: probability}``.
Temperature and top-p are applied to the table exactly as a neural backend applies them
to token logits (at the level of whole steps), and log-probs are reported under that
law, so the loop and the methods run unchanged on a world whose distributions are known.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

from gsi.types import SamplingParams, StepSample

Table = Callable[[str], Mapping[str, float]]


def step_law(probs: Mapping[str, float], params: SamplingParams) -> tuple[list[str], np.ndarray]:
    """Steps and their probabilities after temperature and top-p; temperature 0 is the
    point mass on the most likely step (ties: the first in the table's order)."""
    steps = list(probs)
    if params.temperature == 0:
        p = np.zeros(len(steps))
        p[int(np.argmax([probs[s] for s in steps]))] = 1.0
        return steps, p
    with np.errstate(divide="ignore"):
        logits = np.log(np.array([probs[s] for s in steps], dtype=np.float64)) / params.temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    if params.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        keep = np.zeros_like(p, dtype=bool)
        keep[order[before < params.top_p]] = True
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    return steps, p


class TableLM:
    """Samples whole steps from ``table(prefix)``; a step ending in EOS is marked by
    the table key ending with ``eos_marker`` (stripped from the returned text)."""

    def __init__(self, table: Table, name: str = "table", eos_marker: str = "<eos>") -> None:
        self.table = table
        self.name = name
        self.eos_marker = eos_marker

    def _sample_of(self, key: str, logprob: float) -> StepSample:
        if key.endswith(self.eos_marker):
            text = key[: -len(self.eos_marker)]
            return StepSample(text, len(text) + 1, logprob, "eos")
        return StepSample(key, len(key), logprob, "stop")

    def sample(
        self, prompts: Sequence[str], n: int, seeds: Sequence[int], params: SamplingParams
    ) -> list[list[StepSample]]:
        out = []
        for prompt, seed in zip(prompts, seeds):
            steps, p = step_law(self.table(prompt), params)
            cdf = np.cumsum(p)
            u = np.random.default_rng(seed).random(n) * cdf[-1]
            idx = np.minimum(np.searchsorted(cdf, u, side="right"), len(steps) - 1)
            out.append([self._sample_of(steps[i], math.log(p[i])) for i in idx])
        return out

    def score(
        self, prompts: Sequence[str], steps: Sequence[Sequence[StepSample]], params: SamplingParams
    ) -> list[np.ndarray]:
        out = []
        for prompt, group in zip(prompts, steps):
            keys, p = step_law(self.table(prompt), params)
            law = dict(zip(keys, p))
            vals = []
            for s in group:
                key = s.text + self.eos_marker if s.finish == "eos" else s.text
                prob = law.get(key, 0.0)
                vals.append(math.log(prob) if prob > 0 else -math.inf)
            out.append(np.array(vals))
        return out
