"""Enumerable worlds: finite step trees with explicit pi_S, pi_B and rewards.

A :class:`World` is a tree of depth ``depth``: at every node the next step is one of
``K`` texts, with probabilities ``p_small`` (pi_S), ``p_big`` (pi_B) and rewards ``r``.
It is served to the real decoding loop as two :class:`TableLM` models and a
:class:`TableReward`, so every method runs through ``gsi.decoding.Decoder`` and
``gsi.methods`` unchanged. Temperature and top-p are applied by the backend (at the
step level) and by :meth:`World.laws` in the same way (:func:`step_law`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gsi.backends.law import STEP_SEPARATOR as SEP
from gsi.backends.table import TableLM, step_law
from gsi.rewards.table import TableReward
from gsi.types import SamplingParams

Path = tuple[int, ...]


@dataclass(frozen=True)
class Node:
    """The explicit laws of the next step at one node (before temperature / top-p)."""

    p_small: np.ndarray
    p_big: np.ndarray
    rewards: np.ndarray


@dataclass(frozen=True)
class Laws:
    """The laws actually sampled from at one node (tempered, truncated)."""

    small: np.ndarray
    big: np.ndarray
    rewards: np.ndarray


@dataclass(frozen=True)
class World:
    """A step tree; ``nodes[path]`` is the law after the steps ``path`` (indices)."""

    name: str
    num_steps: int  # K, candidate steps per node
    depth: int
    nodes: dict[Path, Node]
    prompt: str = "Q" + SEP

    # ------------------------------------------------------------ text <-> path
    def text(self, k: int) -> str:
        return f"step{k}{SEP}"

    def index(self, text: str) -> int:
        return int(text[len("step") : -len(SEP)])

    def path_of(self, steps: Sequence[str]) -> Path:
        return tuple(self.index(s) for s in steps)

    def path_of_prefix(self, prefix: str) -> Path:
        body = prefix[len(self.prompt) :]
        return tuple(self.index(s + SEP) for s in body.split(SEP)[:-1])

    @property
    def leaves(self) -> list[Path]:
        return list(itertools.product(range(self.num_steps), repeat=self.depth))

    # ------------------------------------------------------------ the loop's parts
    def _table(self, role: str):
        def table(prefix: str) -> dict[str, float]:
            node = self.nodes[self.path_of_prefix(prefix)]
            probs = node.p_small if role == "small" else node.p_big
            return {self.text(k): float(p) for k, p in enumerate(probs)}

        return table

    def small_lm(self) -> TableLM:
        return TableLM(self._table("small"), name=f"{self.name}/small")

    def big_lm(self) -> TableLM:
        return TableLM(self._table("big"), name=f"{self.name}/big")

    def reward(self) -> TableReward:
        def table(question: str, previous: Sequence[str], candidate: str) -> float:
            return float(self.nodes[self.path_of(previous)].rewards[self.index(candidate)])

        return TableReward(table, name=f"{self.name}/reward")

    # ------------------------------------------------------------ exact laws
    def laws(self, path: Path, sampling: SamplingParams) -> Laws:
        node = self.nodes[path]
        _, small = step_law({self.text(k): float(p) for k, p in enumerate(node.p_small)}, sampling)
        _, big = step_law({self.text(k): float(p) for k, p in enumerate(node.p_big)}, sampling)
        return Laws(small, big, node.rewards)

    def solution_laws(self, sampling: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
        """pi_S and pi_B of whole solutions (one entry per leaf, in :attr:`leaves` order)."""
        small, big = np.ones(len(self.leaves)), np.ones(len(self.leaves))
        for i, leaf in enumerate(self.leaves):
            for t in range(self.depth):
                laws = self.laws(leaf[:t], sampling)
                small[i] *= laws.small[leaf[t]]
                big[i] *= laws.big[leaf[t]]
        return small, big


# ---------------------------------------------------------------- instances
def _interpolate(log_big: np.ndarray, log_other: np.ndarray, gap: float, mode: str) -> np.ndarray:
    if mode == "logit":
        logits = (1.0 - gap) * log_big + gap * log_other
        p = np.exp(logits - logits.max())
        return p / p.sum()
    if mode == "mixture":
        return (1.0 - gap) * np.exp(log_big) + gap * np.exp(log_other)
    raise ValueError(f"mode={mode!r} is not allowed: choose 'logit' or 'mixture'")


def random_world(
    seed: int,
    gap: float,
    num_steps: int = 4,
    depth: int = 1,
    scale: float = 1.0,
    mode: str = "logit",
) -> World:
    """A random tree: per node pi_B = softmax(N(0, scale^2)), an independent law nu of
    the same kind, rewards ~ U(0, 1), and pi_S between pi_B (``gap = 0``) and nu
    (``gap = 1``), by logit interpolation or mixture. The same ``seed`` gives the same
    pi_B, nu and r for every ``gap``, so a sweep over ``gap`` moves pi_S alone."""
    if not 0.0 <= gap <= 1.0:
        raise ValueError(f"gap={gap} is not allowed: it must be in [0, 1]")
    rng = np.random.default_rng(seed)
    nodes = {}
    for t in range(depth):
        for path in itertools.product(range(num_steps), repeat=t):
            logits = scale * rng.standard_normal((2, num_steps))
            log_big, log_other = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            rewards = rng.random(num_steps)
            p_big = np.exp(log_big)
            nodes[path] = Node(_interpolate(log_big, log_other, gap, mode), p_big, rewards)
    return World(f"random(seed={seed},gap={gap:g},K={num_steps},depth={depth})", num_steps, depth, nodes)


def misses_best(eps: float = 0.02) -> World:
    """One step: pi_B gives the best step (r = 0.95) probability 0.2; pi_S gives it
    ``eps`` and spreads the rest like pi_B over the other steps."""
    p_big = np.array([0.2, 0.35, 0.3, 0.15])
    p_small = np.concatenate([[eps], (1 - eps) * p_big[1:] / p_big[1:].sum()])
    rewards = np.array([0.95, 0.6, 0.4, 0.1])
    return World(f"misses_best(eps={eps:g})", 4, 1, {(): Node(p_small, p_big, rewards)})


def overconfident(mass: float = 0.7) -> World:
    """One step: pi_S puts ``mass`` on a low-reward step that pi_B finds unlikely."""
    p_big = np.array([0.3, 0.35, 0.3, 0.05])
    p_small = np.concatenate([(1 - mass) * p_big[:3] / p_big[:3].sum(), [mass]])
    rewards = np.array([0.9, 0.6, 0.3, 0.2])
    return World(f"overconfident(mass={mass:g})", 4, 1, {(): Node(p_small, p_big, rewards)})
