"""Train the toy world's small and big models from scratch, deterministically on CPU.

    python -m gsi.toy.train                  # both models into gsi/toy/assets/
    python -m gsi.toy.train --which small --out /tmp/toy

The committed weights under ``gsi/toy/assets/`` were produced by this script with its
defaults; ``train_meta.json`` beside each model records the settings and final loss.
The two differ in depth (2 vs 4 layers) and width, 6.3x in FLOPs per token (Qwen2.5-Math
1.5B vs 7B: about 5x); both learn from the same mixture of the default world and
its easy variant (:func:`gsi.toy.task.training_problem`).
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
from gsi.toy.task import ToyProblem, training_problem
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
    batch: int = 32
    warmup: int = 50
    stop_at: int | None = None  # end early at this step of the ``steps`` schedule


SPECS = {
    # head_dim = hidden / heads = 32 for both, as vLLM requires.
    # The small model stops at step 2200 of a 3000-step schedule (chosen from snapshots,
    # `--snapshots`): there it solves about a third of the default world at T = 0.7.
    "small": ModelSpec(hidden=64, layers=2, heads=2, intermediate=256, steps=3000, lr=3e-3, stop_at=2200),
    "big": ModelSpec(hidden=128, layers=4, heads=4, intermediate=384, steps=2000, lr=2e-3),
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
    problems: list[ToyProblem] = [training_problem(rng) for _ in range(size)]
    seqs, labels = [], []
    for p in problems:
        prompt = tokenizer.encode(p.prompt, add_special_tokens=True)
        answer = tokenizer.encode("".join(p.solution_steps()), add_special_tokens=False)
        answer.append(tokenizer.eos_token_id)
        seqs.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    ids, mask = pad_with_mask(seqs, tokenizer.pad_token_id)
    return ids, mask, pad(labels, -100)


THREADS = 1  # the toy models are too small for a second thread to pay (and it shares the CPU)


def flops_per_token(config) -> int:
    """Forward FLOPs per token of a Llama config (2 per multiply-add, attention over the
    context excluded): the projections, the MLP and the LM head."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * inter
    return 2 * (layers * per_layer + h * config.vocab_size)


def save(model, tokenizer, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    model.save_pretrained(target)
    save_tokenizer(tokenizer, target)
    model.train(was_training)


def train(which: str, out: Path, seed: int = 0, steps: int | None = None,
          snapshots: tuple[int, ...] = ()) -> dict:
    """Train one model and save it (with the tokenizer) under ``out / which``; also under
    ``out / f"{which}@{k}"`` after each step ``k`` in ``snapshots`` (to choose ``stop_at``)."""
    import torch

    torch.set_num_threads(THREADS)
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

    def snapshot(done: int, loss_ema: float) -> None:
        if done in snapshots:
            save(model, tokenizer, out / f"{which}@{done}")
            log.info("snapshot %s@%d (loss %.4f)", which, done, loss_ema)

    loss_ema = fit(model, opt, sched, spec.steps, step_loss, which, spec.stop_at, snapshot)
    target = out / which
    save(model, tokenizer, target)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    meta = {
        "which": which,
        "seed": seed,
        "spec": asdict(spec),
        "parameters": params,
        "flops_per_token": flops_per_token(model.config),
        "final_loss_ema": round(loss_ema or 0.0, 5),
        "train_seconds": round(time.time() - start, 1),
        "torch_threads": THREADS,
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
    parser.add_argument("--snapshots", default="", help="comma list of steps to save a copy at")
    args = parser.parse_args(argv)
    snapshots = tuple(int(k) for k in args.snapshots.split(",") if k)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for which in args.which.split(","):
        if which not in SPECS:
            parser.error(f"--which: unknown model {which!r}; choose from {sorted(SPECS)}")
        train(which, args.out, args.seed, args.steps, snapshots)


if __name__ == "__main__":
    main()
