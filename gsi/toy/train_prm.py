"""Train the toy world's process reward model, deterministically on one CPU thread.

    python -m gsi.toy.train_prm              # into gsi/toy/assets/prm/
    python -m gsi.toy.train_prm --out /tmp/toy

The PRM has the architecture of Qwen2.5-Math-PRM (``Qwen2ForProcessRewardModel``: a
tiny Qwen2 backbone and a 2-class head read at the ``<extra_0>`` step tags) and a
Qwen2-style byte-level BPE tokenizer learnt from toy text (:mod:`gsi.toy.prm_tokenizer`).
It learns from conversations about training problems (never held-out ones): a correct
prefix followed by the correct next step (label 1) or a wrong one (label 0), sometimes
continued past the error (label 0). Wrong steps are off-by-k results, another operator
or operand, a stale value, premature or wrong ``\\boxed{}`` answers, and steps sampled
from the toy small model. ``train_meta.json`` records settings, loss and held-out AUC.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gsi.engines.hf import load, pad, pad_with_mask
from gsi.toy.fit import fit, machine, optimizer
from gsi.rewards.prm_format import QWEN_STEP_TAG, qwen_prm_messages
from gsi.toy.task import OPS, STEP_SEP, ToyProblem, apply, generate_problems, is_heldout, sample_problem

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
THREADS = 1


@dataclass(frozen=True)
class PRMSpec:
    hidden: int = 64
    layers: int = 2
    heads: int = 2  # head_dim 32, as vLLM requires
    intermediate: int = 128
    lm_steps: int = 600  # first: the backbone learns the task as a causal LM (head discarded)
    lm_lr: float = 3e-3
    steps: int = 1000  # then: the PRM (backbone + score head) learns right from wrong
    lr: float = 1e-3
    batch: int = 64
    warmup: int = 40
    sampled_problems: int = 512  # training problems the small model solves for wrong steps


# ------------------------------------------------------------------ wrong steps
def wrong_steps(p: ToyProblem, index: int) -> list[str]:
    """Plausible wrong versions of reference step ``index`` (all differ from it)."""
    ref = p.solution_steps()
    vals = p.values()
    if index == len(ref) - 1:  # the answer step
        ans = vals[-1]
        out = [f"\\boxed{{{ans + d}}}" for d in (-10, -2, -1, 1, 2, 10) if ans + d >= 0]
        out += [f"\\boxed{{{vals[-2]}}}", f"{ref[-2].strip()}{STEP_SEP}"]
    else:
        a, op, b, c = vals[index], p.ops[index], p.operands[index + 1], vals[index + 1]
        out = [f"{a}{op}{b}={c + d}{STEP_SEP}" for d in (-10, -2, -1, 1, 2, 10) if c + d >= 0]
        for other in OPS:
            if other != op:
                out.append(f"{a}{other}{b}={apply(a, other, b)}{STEP_SEP}")  # true, wrong operator
                out.append(f"{a}{other}{b}={c}{STEP_SEP}")
        for b2 in (b - 1, b + 1):
            if b2 >= 0:
                out.append(f"{a}{op}{b2}={apply(a, op, b2)}{STEP_SEP}")
        if index > 0:
            stale = vals[index - 1]
            out.append(f"{stale}{op}{b}={apply(stale, op, b)}{STEP_SEP}")
        out += [f"\\boxed{{{c}}}", f"\\boxed{{{a}}}"]  # premature answers
    return sorted({s for s in out if s.strip() != ref[index].strip()})


def continue_after(p: ToyProblem, wrong: str, index: int) -> str | None:
    """A step that carries a wrong result on (consistently computed), or None."""
    if index + 1 >= len(p.ops) or "boxed" in wrong:
        return None
    value = int(wrong.strip().split("=")[1])
    op, b = p.ops[index + 1], p.operands[index + 2]
    return f"{value}{op}{b}={apply(value, op, b)}{STEP_SEP}"


def sample_small_steps(problems: Sequence[ToyProblem], seed: int) -> list[tuple[ToyProblem, int, str]]:
    """Wrong steps the toy small model makes after a correct prefix, at temperature 1."""
    import torch

    model, tok, _ = load(str(ASSETS / "small"), device="cpu")
    tok.padding_side = "left"
    torch.manual_seed(seed)
    found = []
    for start in range(0, len(problems), 128):
        chunk = problems[start : start + 128]
        enc = tok([p.prompt for p in chunk], return_tensors="pt", padding=True)
        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=48, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for p, row in zip(chunk, gen[:, enc["input_ids"].shape[1] :]):
            text = tok.decode(row, skip_special_tokens=True)
            steps = [s + STEP_SEP for s in text.split(STEP_SEP)]
            steps[-1] = steps[-1][: -len(STEP_SEP)]
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


def training_batch(rng, tok, tag_id: int, size: int, sampled: dict, sampled_problems: list):
    seqs, labels = [], []
    for _ in range(size):
        if sampled_problems and rng.random() < 0.25:
            p = sampled_problems[int(rng.integers(0, len(sampled_problems)))]
        else:
            p = sample_problem(rng)
            while is_heldout(p):
                p = sample_problem(rng)
        steps, _ = make_example(rng, p, sampled)
        ids, lab = encode_example(tok, p, steps, tag_id)
        seqs.append(ids)
        labels.append(lab)
    ids, mask = pad_with_mask(seqs, tok.pad_token_id)
    return ids, mask, pad(labels, -100)


def lm_batch(rng, tok, size: int):
    """Right solutions as PRM conversations, for the causal-LM warm-up (answer tokens labelled)."""
    seqs, labels = [], []
    for _ in range(size):
        p = sample_problem(rng)
        while is_heldout(p):
            p = sample_problem(rng)
        ids, lab = encode_example(tok, p, p.solution_steps(), tok.convert_tokens_to_ids(QWEN_STEP_TAG))
        seqs.append(ids)
        labels.append([t if y >= 0 else -100 for t, y in zip(ids, lab)])
    ids, mask = pad_with_mask(seqs, tok.pad_token_id)
    return ids, mask, pad(labels, -100)


# ------------------------------------------------------------------ evaluation
def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a random right step outscores a random wrong one), ties counted half."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def heldout_auc(reward, count: int = 100, seed: int = 99) -> dict:
    """Score the right step and every listed wrong step after a correct prefix, on
    held-out problems, with ``reward`` (any :class:`ProcessReward`); return the AUC."""
    rng = np.random.default_rng(seed)
    problems = generate_problems(count, seed, heldout=True)
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
    return {"auc": round(auc(pos, neg), 4), "top1": round(top1, 4), "problems": count,
            "mean_right": round(float(np.mean(pos)), 4), "mean_wrong": round(float(np.mean(neg)), 4)}


# ------------------------------------------------------------------ training
def build_model(spec: PRMSpec, vocab_size: int, tok, seed: int):
    import torch
    from transformers import Qwen2Config

    from gsi.rewards.qwen2_prm_model import ARCHITECTURE, Qwen2ForProcessRewardModel

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        architectures=[ARCHITECTURE],
        num_labels=2,
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
    )
    return Qwen2ForProcessRewardModel(config)


def warm_up_backbone(model, spec: PRMSpec, tok, rng) -> float | None:
    """Train the backbone as a causal LM on right solutions (as real PRMs start from an
    LM), then hand its weights to the PRM; the LM head is discarded."""
    from transformers import Qwen2ForCausalLM

    if spec.lm_steps == 0:
        return None
    lm = Qwen2ForCausalLM(model.config)
    lm.model.load_state_dict(model.model.state_dict())
    opt, sched = optimizer(lm, spec.lm_lr, spec.warmup, spec.lm_steps)

    def step_loss():
        ids, mask, labels = lm_batch(rng, tok, spec.batch)
        return lm(input_ids=ids, attention_mask=mask, labels=labels).loss

    loss_ema = fit(lm, opt, sched, spec.lm_steps, step_loss, "backbone LM")
    model.model.load_state_dict(lm.model.state_dict())
    return loss_ema


def train(out: Path, seed: int = 0, steps: int | None = None, evaluate: bool = True) -> dict:
    """Train the PRM and save it, with its tokenizer, under ``out / "prm"``."""
    import torch
    from transformers import AutoTokenizer

    from gsi.toy.prm_tokenizer import build_prm_tokenizer

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    spec = PRMSpec() if steps is None else PRMSpec(steps=steps)
    target = Path(out) / "prm"
    start = time.time()
    build_prm_tokenizer(target)
    tok = AutoTokenizer.from_pretrained(target)
    tag_id = tok.convert_tokens_to_ids("<extra_0>")
    rng = np.random.default_rng(seed + 1)
    pool_problems = generate_problems(spec.sampled_problems, seed + 2, heldout=False)
    found = sample_small_steps(pool_problems, seed + 3)
    sampled: dict = {}
    for p, i, s in found:
        sampled.setdefault((p.expr, i), []).append(s)
    sampled_problems = sorted({p for p, _, _ in found}, key=lambda p: p.expr)
    log.info("small model: %d wrong steps after a correct prefix on %d problems", len(found), len(pool_problems))

    model = build_model(spec, len(tok), tok, seed)
    lm_loss = warm_up_backbone(model, spec, tok, rng)
    opt, sched = optimizer(model, spec.lr, spec.warmup, spec.steps)
    ce = torch.nn.functional.cross_entropy

    def step_loss():
        ids, mask, labels = training_batch(rng, tok, tag_id, spec.batch, sampled, sampled_problems)
        logits = model(ids, mask)
        flat, lab = logits.reshape(-1, 2), labels.reshape(-1)
        tags = (ids.reshape(-1) == tag_id) & (lab >= 0)
        return ce(flat, lab, ignore_index=-100) + ce(flat[tags], lab[tags])

    loss_ema = fit(model, opt, sched, spec.steps, step_loss, "prm")
    model.eval()
    model.save_pretrained(target)
    seconds = time.time() - start
    meta = {
        "which": "prm",
        "seed": seed,
        "spec": asdict(spec),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "small_model_wrong_steps": len(found),
        "backbone_lm_loss_ema": round(lm_loss or 0.0, 5),
        "final_loss_ema": round(loss_ema or 0.0, 5),
        "train_seconds": round(seconds, 1),
        "torch_threads": THREADS,
        "trained_on": machine(),
    }
    if evaluate:
        from gsi.rewards.prm import HFQwenPRM

        meta["heldout"] = heldout_auc(HFQwenPRM(str(target), name="toy-prm"))
        log.info("held-out: %s", meta["heldout"])
    (target / "train_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("saved the PRM (%d parameters) to %s in %.0f s", meta["parameters"], target, seconds)
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder (the PRM goes into OUT/prm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="override training steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args.out, args.seed, args.steps)


if __name__ == "__main__":
    main()
