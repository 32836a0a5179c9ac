"""The toy world's programmatic step verifier, a process reward in [0, 1].

It lives beside the toy world (not under :mod:`gsi.rewards`) so the reward package
knows nothing of the toy task; it is used as ``reward=toy_verifier``
(``_target_: gsi.toy.verifier.ToyVerifier``)."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from gsi.toy.task import parse_prompt, verify_step


class ToyVerifier:
    """Scores arithmetic steps (see :func:`gsi.toy.task.verify_step`), optionally noisy.

    ``noise`` > 0 adds a Gaussian error of that standard deviation, clipped to [0, 1],
    that is a fixed function of the text (like a real PRM: the same partial solution
    always gets the same score, and some wrong steps score high). With ``noise = 0`` the
    verifier is exact.
    """

    def __init__(self, name: str = "toy_verifier", noise: float = 0.0) -> None:
        if noise < 0:
            raise ValueError(f"reward.noise={noise} is not allowed: it must be >= 0")
        self.name = name
        self.noise = noise

    def _noise(self, question: str, previous: Sequence[str], candidate: str) -> float:
        key = "\x00".join([question, *previous, candidate]).encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        return self.noise * float(np.random.default_rng(seed).standard_normal())

    def score(
        self,
        questions: Sequence[str],
        previous: Sequence[Sequence[str]],
        candidates: Sequence[Sequence[str]],
    ) -> list[np.ndarray]:
        out = []
        for question, prev, cands in zip(questions, previous, candidates):
            problem = parse_prompt(question)
            exact = np.array([verify_step(problem, list(prev), c) for c in cands], dtype=np.float64)
            if self.noise > 0:
                exact = np.clip(exact + [self._noise(question, prev, c) for c in cands], 0.0, 1.0)
            out.append(exact)
        return out
