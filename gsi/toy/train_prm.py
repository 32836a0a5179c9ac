"""Train the toy world's process reward model, deterministically on one CPU thread.

    python -m gsi.toy.train_prm              # into gsi/toy/assets/prm/
    python -m gsi.toy.train_prm --out /tmp/toy

The PRM has the architecture of Qwen2.5-Math-PRM (``Qwen2ForProcessRewardModel``: a
tiny Qwen2 backbone and a 2-class head read at the ``<extra_0>`` step tags) and a
Qwen2-style byte-level BPE tokenizer learnt from toy text (:mod:`gsi.toy.prm_tokenizer`).
It learns from labelled conversations about training problems (:mod:`gsi.toy.prm_data`);
``train_meta.json`` records settings, loss and held-out AUC (:mod:`gsi.toy.evaluate`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gsi.toy.evaluate import heldout_auc
from gsi.toy.fit import fit, machine, optimizer
from gsi.toy.prm_data import lm_batch, sample_small_steps, training_batch
from gsi.toy.task import generate_problems

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
