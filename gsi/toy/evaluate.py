"""Held-out quality of the toy models: the PRM's AUC for right vs wrong next steps and
the LMs' likelihood of reference solutions, on problems never used in training."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from gsi.toy.prm_data import wrong_steps
from gsi.toy.task import EASY_MAX_VALUE, generate_problems

WORLDS = {"default": {}, "easy": {"min_ops": 2, "max_ops": 3, "max_value": EASY_MAX_VALUE}}


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a random right step outscores a random wrong one), ties counted half."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def heldout_auc(reward, count: int = 100, seed: int = 99, world: str = "default") -> dict:
    """Score the right step and every listed wrong step after a correct prefix, on
    held-out problems of ``world`` ("default" or "easy"), with ``reward`` (any
    :class:`ProcessReward`); return the AUC."""
    rng = np.random.default_rng(seed)
    problems = generate_problems(count, seed, True, **WORLDS[world])
    questions, previous, candidates, flags = [], [], [], []
    for p in problems:
        ref = p.solution_steps()
        index = int(rng.integers(0, len(ref)))
        wrong = wrong_steps(p, index)
        questions.append(p.prompt)
        previous.append(ref[:index])
        candidates.append([ref[index], *wrong])
        flags.append([True] + [False] * len(wrong))
    scores = reward.score(questions, previous, candidates)
    pos = [float(s[0]) for s in scores]
    neg = [float(v) for s in scores for v in s[1:]]
    top1 = float(np.mean([int(np.argmax(s)) == 0 for s in scores]))
    return {"auc": round(auc(pos, neg), 4), "top1": round(top1, 4), "problems": count, "world": world,
            "mean_right": round(float(np.mean(pos)), 4), "mean_wrong": round(float(np.mean(neg)), 4)}


def heldout_nll(path: str | Path, count: int = 200, seed: int = 4321) -> float:
    """Mean per-token negative log-likelihood of the reference solutions of ``count``
    held-out problems (prompt tokens excluded) under the toy LM at ``path``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for p in generate_problems(count, seed, True):
            prompt = tok.encode(p.prompt)
            ids = prompt + tok.encode("".join(p.solution_steps()), add_special_tokens=False) + [tok.eos_token_id]
            labels = [-100] * len(prompt) + ids[len(prompt):]
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = len(ids) - len(prompt)
            total, tokens = total + float(out.loss) * n, tokens + n
    return total / tokens
