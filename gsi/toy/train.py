"""Train the toy world's small and big models from scratch, deterministically on CPU.

    python -m gsi.toy.train                  # both models into gsi/toy/assets/
    python -m gsi.toy.train --which small --out /tmp/toy

The committed weights under ``gsi/toy/assets/`` were produced by this script with its
defaults; ``train_meta.json`` beside each model records the settings and final loss.
The small model is deliberately under-trained so that the two models are clearly
separated (see ``SPECS``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gsi.engines.hf import pad, pad_with_mask
from gsi.toy.fit import fit, machine, optimizer
from gsi.toy.task import ToyProblem, is_heldout, sample_problem
from gsi.toy.tokenizer import build_tokenizer, save_tokenizer, vocabulary

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class ModelSpec:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    steps: int
    lr: float
    batch: int = 64
    warmup: int = 50


SPECS = {
    # head_dim = hidden / heads = 32 for both, as vLLM requires.
    "small": ModelSpec(hidden=64, layers=2, heads=2, intermediate=128, steps=900, lr=3e-3),
    "big": ModelSpec(hidden=128, layers=4, heads=4, intermediate=512, steps=1500, lr=2e-3),
}


def build_model(spec: ModelSpec, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocabulary()),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def training_batch(rng: np.random.Generator, tokenizer, size: int):
    """Token ids and labels for ``size`` training problems (prompt tokens unlabeled)."""
    problems: list[ToyProblem] = []
    while len(problems) < size:
        p = sample_problem(rng)
        if not is_heldout(p):
            problems.append(p)
    seqs, labels = [], []
    for p in problems:
        prompt = tokenizer.encode(p.prompt, add_special_tokens=True)
        answer = tokenizer.encode("".join(p.solution_steps()), add_special_tokens=False)
        answer.append(tokenizer.eos_token_id)
        seqs.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    ids, mask = pad_with_mask(seqs, tokenizer.pad_token_id)
    return ids, mask, pad(labels, -100)


def train(which: str, out: Path, seed: int = 0, steps: int | None = None) -> dict:
    """Train one model and save it (with the tokenizer) under ``out / which``."""
    import torch

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    spec = SPECS[which]
    if steps is not None:
        spec = ModelSpec(**{**asdict(spec), "steps": steps})
    tokenizer = build_tokenizer()
    model = build_model(spec, seed)
    opt, sched = optimizer(model, spec.lr, spec.warmup, spec.steps)
    rng = np.random.default_rng(seed + 1)
    start = time.time()

    def step_loss():
        ids, mask, lab = training_batch(rng, tokenizer, spec.batch)
        return model(input_ids=ids, attention_mask=mask, labels=lab).loss

    loss_ema = fit(model, opt, sched, spec.steps, step_loss, which)
    target = out / which
    target.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(target)
    save_tokenizer(tokenizer, target)
    params = sum(p.numel() for p in model.parameters())
    meta = {
        "which": which,
        "seed": seed,
        "spec": asdict(spec),
        "parameters": params,
        "final_loss_ema": round(loss_ema or 0.0, 5),
        "train_seconds": round(time.time() - start, 1),
        "torch_threads": 2,
        "trained_on": machine(),
    }
    (target / "train_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("saved %s (%d parameters) to %s", which, params, target)
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="small,big", help="comma list of small,big")
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="override training steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for which in args.which.split(","):
        if which not in SPECS:
            parser.error(f"--which: unknown model {which!r}; choose from {sorted(SPECS)}")
        train(which, args.out, args.seed, args.steps)


if __name__ == "__main__":
    main()
