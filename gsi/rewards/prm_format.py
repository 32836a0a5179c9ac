"""What every process reward model shares: the Qwen-PRM conversation, aggregation, batching.

A PRM judges a whole partial solution ``previous + [candidate]`` and yields one
probability per step; :func:`aggregate` turns those into the candidate's reward
(``last`` = the newest step's, as the paper uses; ``min`` or ``product`` over all steps).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsi.groups import split_by_problem  # noqa: F401 - the one split, also used by the vLLM PRM
from gsi.errors import ConfigError

QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_STEP_TAG = "<extra_0>"
AGGREGATIONS = ("last", "min", "product")


def check_aggregation(aggregation: str) -> str:
    if aggregation not in AGGREGATIONS:
        raise ConfigError(
            f"reward.aggregation={aggregation!r} is not allowed: choose one of {', '.join(AGGREGATIONS)}"
        )
    return aggregation


def aggregate(step_probs: np.ndarray, aggregation: str) -> float:
    """The reward of a partial solution from its per-step probabilities (NaN if none)."""
    p = np.asarray(step_probs, dtype=np.float64)
    if p.size == 0 or not np.all(np.isfinite(p)):
        return float("nan")
    if aggregation == "last":
        return float(p[-1])
    if aggregation == "min":
        return float(p.min())
    if aggregation == "product":
        return float(np.exp(np.log(np.clip(p, 1e-300, 1.0)).sum()))
    raise ConfigError(check_aggregation(aggregation))


def qwen_prm_messages(
    question: str, steps: Sequence[str], system: str = QWEN_MATH_SYSTEM, step_tag: str = QWEN_STEP_TAG
) -> list[dict[str, str]]:
    """The conversation Qwen2.5-Math-PRM reads: each step stripped and followed by the tag."""
    answer = "".join(step.strip() + step_tag for step in steps)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": question.strip()},
        {"role": "assistant", "content": answer},
    ]


def render_qwen_prm(tokenizer, question: str, steps: Sequence[str], system: str = QWEN_MATH_SYSTEM) -> str:
    """The conversation as text, through the tokenizer's own chat template."""
    return tokenizer.apply_chat_template(
        qwen_prm_messages(question, steps, system), tokenize=False, add_generation_prompt=False
    )


def _splitters(tokenizer) -> list[str]:
    """Added tokens at which the tokenizer cuts its input before anything else (matched
    verbatim, taking no whitespace with them): the text after one tokenizes on its own."""
    return [t.content for t in tokenizer.added_tokens_decoder.values()
            if not (t.normalized or t.lstrip or t.rstrip or t.single_word)]


def encode_group(prm, question: str, previous: Sequence[str], candidates: Sequence[str]) -> list[list[int] | None]:
    """``prm.encode(question, previous + [c])`` for every candidate, tokenizing the text
    they share once: up to the last added token before the candidate's step (the last step
    tag of ``previous``, or the chat template's turn token), where the tokenizer splits its
    input, so the rest tokenizes on its own. A candidate whose text does not start with
    that head is tokenized whole."""
    done = "".join(s.strip() + QWEN_STEP_TAG for s in previous)
    splitters = _splitters(prm.tokenizer)
    head, head_ids, out = None, [], []
    for c in candidates:
        text = render_qwen_prm(prm.tokenizer, question, list(previous) + [c], prm.system_prompt)
        if head is None:
            at = text.rfind(done + c.strip() + QWEN_STEP_TAG)
            shared = text[: at + len(done)] if at >= 0 else ""
            cut = max((shared.rfind(s) + len(s) for s in splitters if s in shared), default=0)
            head = shared[:cut]
            head_ids = prm.tokenizer.encode(head, add_special_tokens=False) if head else []
        if head and text.startswith(head):
            ids = head_ids + prm.tokenizer.encode(text[len(head):], add_special_tokens=False)
        else:
            ids = prm.tokenizer.encode(text, add_special_tokens=False)
        out.append(prm.checked(ids, len(previous) + 1))
    return out


def score_candidates(prm, questions, previous, candidates, encode_many=None) -> list[np.ndarray]:
    """The ``ProcessReward.score`` of a step-judging PRM: every candidate of every problem
    as the last step of its partial solution, in one batch. ``prm.encode(question, steps)``
    gives its input (None: cannot be scored, e.g. too long -> NaN), or
    ``encode_many(question, previous, candidates)`` a problem's inputs at once (for the
    Qwen format: :func:`encode_group`); ``prm.step_probabilities`` the positive-class
    probability of each step."""
    encode_many = encode_many or (lambda q, prev, cands: [prm.encode(q, list(prev) + [c]) for c in cands])
    encoded = [e for q, prev, cands in zip(questions, previous, candidates) for e in encode_many(q, prev, cands)]
    todo = [k for k, e in enumerate(encoded) if e is not None]
    probs = prm.step_probabilities([encoded[k] for k in todo]) if todo else []
    values = np.full(len(encoded), np.nan)
    for k, p in zip(todo, probs):
        values[k] = aggregate(p, prm.aggregation)
    return split_by_problem(values, candidates)
