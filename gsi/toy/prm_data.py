"""The toy PRM's training data: wrong steps of every kind, the small model's own
mistakes, and labelled Qwen-PRM conversations built from them.

Examples are about training problems only (never held-out ones): a correct prefix
followed by the correct next step (label 1) or a wrong one (label 0), sometimes continued
past the error (label 0). Wrong steps are off-by-k results (k = 1, 2, 10, 100: a missed
carry), a swapped digit, another operator or operand, a stale value, premature or wrong
``\\boxed{}`` answers, and the steps the toy small and big models get wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from gsi.backends.law import STEP_SEPARATOR
from gsi.engines.hf import load, pad, pad_with_mask
from gsi.rewards.prm_format import QWEN_STEP_TAG, qwen_prm_messages
from gsi.toy.task import OPS, ToyProblem, apply, training_problem

ASSETS = Path(__file__).resolve().parent / "assets"


# ------------------------------------------------------------------ wrong steps
OFFSETS = (-100, -10, -2, -1, 1, 2, 10, 100)


def near_misses(value: int) -> list[int]:
    """Wrong results a model that half-knows the answer writes: off by 1, 2, 10 or 100
    (a dropped or extra carry) and the last two digits swapped; all >= 0 and != value."""
    out = [value + d for d in OFFSETS]
    digits = str(value)
    if len(digits) >= 2 and digits[-1] != digits[-2]:
        out.append(int(digits[:-2] + digits[-1] + digits[-2]))
    return [v for v in out if v >= 0 and v != value]


def wrong_steps(p: ToyProblem, index: int) -> list[str]:
    """Plausible wrong versions of reference step ``index`` (all differ from it)."""
    ref = p.solution_steps()
    vals = p.values()
    if index == len(ref) - 1:  # the answer step
        ans = vals[-1]
        out = [f"\\boxed{{{v}}}" for v in near_misses(ans)]
        out += [f"\\boxed{{{vals[-2]}}}", f"{ref[-2].strip()}{STEP_SEPARATOR}"]
    else:
        a, op, b, c = vals[index], p.ops[index], p.operands[index + 1], vals[index + 1]
        out = [f"{a}{op}{b}={v}{STEP_SEPARATOR}" for v in near_misses(c)]
        for other in OPS:
            if other != op:
                out.append(f"{a}{other}{b}={apply(a, other, b)}{STEP_SEPARATOR}")  # true, wrong operator
                out.append(f"{a}{other}{b}={c}{STEP_SEPARATOR}")
        for b2 in (b - 1, b + 1):
            if b2 >= 0:
                out.append(f"{a}{op}{b2}={apply(a, op, b2)}{STEP_SEPARATOR}")
        if index > 0:
            stale = vals[index - 1]
            out.append(f"{stale}{op}{b}={apply(stale, op, b)}{STEP_SEPARATOR}")
        out += [f"\\boxed{{{c}}}", f"\\boxed{{{a}}}"]  # premature answers
    return sorted({s for s in out if s.strip() != ref[index].strip()})


def continue_after(p: ToyProblem, wrong: str, index: int) -> str | None:
    """A step that carries a wrong result on (consistently computed), or None (also
    when ``wrong`` has no integer result to carry, as a step the small model sampled
    may not: ``7-5=a7``)."""
    if index + 1 >= len(p.ops) or "boxed" in wrong:
        return None
    try:
        value = int(wrong.strip().split("=")[1])
    except (IndexError, ValueError):
        return None
    op, b = p.ops[index + 1], p.operands[index + 2]
    return f"{value}{op}{b}={apply(value, op, b)}{STEP_SEPARATOR}"


def sample_model_steps(
    problems: Sequence[ToyProblem], seed: int, model_dir: Path
) -> list[tuple[ToyProblem, int, str]]:
    """Wrong steps the toy LM in ``model_dir`` makes after a correct prefix, at temperature 1."""
    import torch

    model, tok, _ = load(str(model_dir), device="cpu")
    tok.padding_side = "left"
    torch.manual_seed(seed)
    found = []
    for start in range(0, len(problems), 128):
        chunk = problems[start : start + 128]
        enc = tok([p.prompt for p in chunk], return_tensors="pt", padding=True)
        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=96, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for p, row in zip(chunk, gen[:, enc["input_ids"].shape[1] :]):
            text = tok.decode(row, skip_special_tokens=True)
            steps = [s + STEP_SEPARATOR for s in text.split(STEP_SEPARATOR)]
            steps[-1] = steps[-1][: -len(STEP_SEPARATOR)]
            ref = p.solution_steps()
            for i, s in enumerate(steps[: len(ref)]):
                if s.strip() != ref[i].strip():
                    if s.strip():
                        found.append((p, i, s))
                    break
    return found


# ------------------------------------------------------------------ examples
def make_example(rng: np.random.Generator, p: ToyProblem, sampled: dict) -> tuple[list[str], list[int]]:
    """(steps, labels): a correct prefix, then a right or wrong step (and maybe more)."""
    ref = p.solution_steps()
    index = int(rng.integers(0, len(ref)))
    steps, labels = ref[:index], [1] * index
    if rng.random() < 0.5:
        return steps + [ref[index]], labels + [1]
    pool = sampled.get((p.expr, index))
    if pool and rng.random() < 0.5:
        wrong = pool[int(rng.integers(0, len(pool)))]
    else:
        options = wrong_steps(p, index)
        wrong = options[int(rng.integers(0, len(options)))]
    steps, labels = steps + [wrong], labels + [0]
    after = continue_after(p, wrong, index)
    if after is not None and rng.random() < 0.3:
        steps, labels = steps + [after], labels + [0]
    return steps, labels


def encode_example(tok, p: ToyProblem, steps: Sequence[str], tag_id: int) -> tuple[list[int], list[int]]:
    """Token ids and per-token labels of one conversation.

    Every token of the answer is labelled: 1 while the answer so far is a prefix of the
    reference answer, 0 from the first token that leaves it (-100 outside the answer).
    At a step tag this is exactly the process label (right step after a right prefix);
    the labels between tags make the model check each result digit, which a label at the
    tags alone teaches far more slowly.
    """
    text = tok.apply_chat_template(qwen_prm_messages(p.prompt, steps), tokenize=False)
    answer = "".join(s.strip() + QWEN_STEP_TAG for s in steps)
    reference = "".join(s.strip() + QWEN_STEP_TAG for s in p.solution_steps())
    begin = text.rindex(answer)
    diverge = next((i for i, (a, b) in enumerate(zip(answer, reference)) if a != b), min(len(answer), len(reference)))
    if len(answer) <= len(reference) and reference.startswith(answer):
        diverge = len(answer)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for start, end in enc["offset_mapping"]:
        if start < begin or end > begin + len(answer):
            labels.append(-100)
        else:
            labels.append(1 if end - begin <= diverge else 0)
    ids = list(enc["input_ids"])
    assert ids.count(tag_id) == len(steps), text
    return ids, labels


def training_batch(rng, tok, tag_id: int, size: int, sampled: dict, sampled_problems: list,
                   draw=training_problem):
    """A batch of PRM conversations; a quarter on problems the toy LMs got wrong."""
    seqs, labels = [], []
    for _ in range(size):
        if sampled_problems and rng.random() < 0.25:
            p = sampled_problems[int(rng.integers(0, len(sampled_problems)))]
        else:
            p = draw(rng)
        steps, _ = make_example(rng, p, sampled)
        ids, lab = encode_example(tok, p, steps, tag_id)
        seqs.append(ids)
        labels.append(lab)
    ids, mask = pad_with_mask(seqs, tok.pad_token_id)
    return ids, mask, pad(labels, -100)


def lm_batch(rng, tok, size: int, draw=training_problem):
    """Right solutions as PRM conversations, for the causal-LM warm-up (answer tokens labelled)."""
    seqs, labels = [], []
    for _ in range(size):
        p = draw(rng)
        ids, lab = encode_example(tok, p, p.solution_steps(), tok.convert_tokens_to_ids(QWEN_STEP_TAG))
        seqs.append(ids)
        labels.append([t if y >= 0 else -100 for t, y in zip(ids, lab)])
    ids, mask = pad_with_mask(seqs, tok.pad_token_id)
    return ids, mask, pad(labels, -100)
