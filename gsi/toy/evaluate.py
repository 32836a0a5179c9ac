"""Held-out quality of the toy models: the PRM's AUC for right vs wrong next steps and
the LMs' likelihood of reference solutions, on problems never used in training."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from gsi.toy.prm_data import ASSETS, OFFSETS, wrong_steps
from gsi.toy.task import _STEP_RE, EASY, generate_problems

WORLDS = {"default": {}, "easy": EASY}


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a random right step outscores a random wrong one), ties counted half."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def heldout_candidates(count: int, seed: int, world: str):
    """(problems, step indices, questions, previous steps, candidates) of the held-out
    test: on each held-out problem a random step, after its correct prefix, with the right
    step first and then every listed wrong version of it."""
    rng = np.random.default_rng(seed)
    problems = generate_problems(count, seed, True, **WORLDS[world])
    indices, questions, previous, candidates = [], [], [], []
    for p in problems:
        ref = p.solution_steps()
        index = int(rng.integers(0, len(ref)))
        indices.append(index)
        questions.append(p.prompt)
        previous.append(ref[:index])
        candidates.append([ref[index], *wrong_steps(p, index)])
    return problems, indices, questions, previous, candidates


def heldout_auc(reward, count: int = 100, seed: int = 99, world: str = "default") -> dict:
    """Score the right step and every listed wrong step after a correct prefix, on
    held-out problems of ``world`` ("default" or "easy"), with ``reward`` (any
    :class:`ProcessReward`); return the AUC."""
    _, _, questions, previous, candidates = heldout_candidates(count, seed, world)
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


def kind_of(step: str, p, index: int) -> str:
    """Which kind of wrong step ``step`` is, as a wrong version of reference step ``index``
    of ``p`` (the categories of :func:`gsi.toy.prm_data.wrong_steps`)."""
    ref = p.solution_steps()
    text = step.strip()
    if index == len(ref) - 1:
        return "answer: a step instead" if "boxed" not in text else "answer: wrong value"
    if "boxed" in text:
        return "premature answer"
    m = _STEP_RE.match(text)
    if m is None:
        return "other"
    a, op, b, v = int(m[1]), m[2], int(m[3]), int(m[4])
    vals = p.values()
    if op != p.ops[index]:
        return "wrong operator"
    if a != vals[index]:
        return "stale value"
    if b != p.operands[index + 1]:
        return "wrong operand"
    d = v - vals[index + 1]
    return f"off by {d:+d}" if d in OFFSETS else "swapped digits"


def heldout_breakdown(reward, count: int = 300, seed: int = 99, world: str = "default") -> dict[str, dict]:
    """Per kind of wrong step: how many, the mean score, and the AUC of the right next step
    against that kind, on the held-out problems and candidates of :func:`heldout_auc`."""
    problems, indices, questions, previous, candidates = heldout_candidates(count, seed, world)
    kinds = [[kind_of(w, p, i) for w in c[1:]] for p, i, c in zip(problems, indices, candidates)]
    scores = reward.score(questions, previous, candidates)
    pos = [float(s[0]) for s in scores]
    by: dict[str, list[float]] = {}
    for ks, s in zip(kinds, scores):
        for k, v in zip(ks, s[1:]):
            by.setdefault(k, []).append(float(v))
    out = {"right step": {"count": len(pos), "mean": round(float(np.mean(pos)), 4), "auc": None}}
    for k in sorted(by):
        out[k] = {"count": len(by[k]), "mean": round(float(np.mean(by[k])), 4), "auc": round(auc(pos, by[k]), 4)}
    everything = [v for vs in by.values() for v in vs]
    out["all wrong steps"] = {"count": len(everything), "mean": round(float(np.mean(everything)), 4),
                              "auc": round(auc(pos, everything), 4)}
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the toy PRM's held-out AUC per kind of wrong step."""
    import argparse

    from gsi.rewards.prm import HFQwenPRM

    parser = argparse.ArgumentParser(description="held-out AUC of a toy PRM, per kind of wrong step")
    parser.add_argument("--path", default=str(ASSETS / "prm"))
    parser.add_argument("--world", default="default", choices=sorted(WORLDS))
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args(argv)
    table = heldout_breakdown(HFQwenPRM(args.path, name="toy_prm", num_threads=1), args.count, world=args.world)
    print(f"{'kind':26s} {'count':>6s} {'mean':>7s} {'AUC':>7s}")
    for k, row in table.items():
        print(f"{k:26s} {row['count']:6d} {row['mean']:7.3f} {'' if row['auc'] is None else format(row['auc'], '7.3f'):>7s}")


if __name__ == "__main__":
    main()
