"""What one call of each toy model costs in the transformers backend at batch 1, and what a
model of another shape would cost in the same loop (issue #18's latency target).

    python -m analysis.forward_cost [--shapes 8x96 8x128] [--problems 48] [--out FILE]

At batch 1 (one problem at a time, the reference code's shape) a call of these tiny models is
bound by the fixed cost of framework calls, as a GPU's decoding is bound by reading the
weights; what sampling with π_S saves against π_B is then the ratio of their per-call costs.
For each model (the committed ``small`` and ``big``, and random-weight models ``LxW`` of
``L`` layers, width ``W`` and MLP ``3W``, head_dim 32, built like the big one's config), on
the same prompts: ``sample_ms_per_token``, the time of one decoding step of ``n`` draws of
one problem (a step's wall time over its longest draw), and ``score_ms_per_call``, the time
of scoring ``n`` drawn steps of one problem in one call. Random weights change no cost:
the shapes and the token counts are the same (the steps scored are the small model's).

From these, ``gsi_estimate``: the gsi / soft_bon_big latency ratio at batch 1 with that
model as π_B and the committed small one as π_S, at acceptance ``a``: per step, π_S's
sampling (the per-token ratio), π_B's sampling in the ``1 - a`` of steps that fall back, and
π_B's scoring call (against its sampling of a step of the small model's mean length); the
rewards and the rest of the loop are left out (a few per cent of a batch-1 run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def shaped_model(layers: int, width: int, out: Path) -> Path:
    """A config-only copy of the big toy model with ``layers`` x ``width`` (MLP ``3 width``)."""
    from analysis.meters import toy_model_path

    big = Path(toy_model_path("big"))
    config = json.loads((big / "config.json").read_text())
    if width % config["head_dim"]:
        raise SystemExit(f"width {width} is not a multiple of head_dim {config['head_dim']}")
    heads = width // config["head_dim"]
    config.update(num_hidden_layers=layers, hidden_size=width, intermediate_size=3 * width,
                  num_attention_heads=heads, num_key_value_heads=heads)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    for name in FILES:
        shutil.copy(big / name, out / name)
    return out


def call_costs(backend, prompts, steps, n: int) -> dict:
    """Per-token sampling and per-call scoring times of ``backend`` at batch 1."""
    from gsi.types import SamplingParams

    params = SamplingParams(0.7, 1.0, max_tokens=16)
    backend.sample(prompts[:2], n, [0, 1], params)  # warm-up
    sampled = tokens = 0.0
    for i, prompt in enumerate(prompts):
        start = time.perf_counter()
        group = backend.sample([prompt], n, [i], params)[0]
        sampled += time.perf_counter() - start
        tokens += max(s.num_tokens for s in group)
    start = time.perf_counter()
    for prompt, group in zip(prompts, steps):
        backend.score([prompt], [group], params)
    scored = time.perf_counter() - start
    return {"sample_ms_per_token": round(1e3 * sampled / tokens, 3),
            "score_ms_per_call": round(1e3 * scored / len(prompts), 3)}


def measure(shapes=(), problems: int = 48, n: int = 4, acceptance: float = 0.85) -> list[dict]:
    """One record per model: its name, layers, width, parameters, the two costs and (but
    for the small model) ``gsi_estimate`` at ``acceptance``."""
    from gsi.backends.hf import HFBackend
    from analysis.meters import toy_model_path
    from gsi.data import ToyArithmetic
    from gsi.types import SamplingParams

    prompts = [p.prompt for p in ToyArithmetic(num_problems=problems, seed=11).load()]
    small = HFBackend(toy_model_path("small"), device="cpu", num_threads=1)
    steps = small.sample(prompts, n, list(range(problems)), SamplingParams(0.7, 1.0, 16))  # what gsi scores
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [("small", toy_model_path("small"), "auto"), ("big", toy_model_path("big"), "auto")]
        for shape in shapes:
            layers, width = (int(x) for x in shape.lower().split("x"))
            models.append((shape, str(shaped_model(layers, width, Path(tmp) / shape)), "dummy"))
        for name, path, load_format in models:
            lm = small if name == "small" else HFBackend(path, device="cpu", num_threads=1, load_format=load_format)
            config = lm.model.config
            records.append({"model": name, "layers": config.num_hidden_layers, "width": config.hidden_size,
                            "parameters": sum(p.numel() for p in lm.model.parameters()),
                            **call_costs(lm, prompts, steps, n)})
    step_tokens = sum(max(s.num_tokens for s in group) for group in steps) / len(steps)
    for r in records[1:]:
        per_step = r["sample_ms_per_token"] * step_tokens
        r["gsi_estimate"] = round(records[0]["sample_ms_per_token"] / r["sample_ms_per_token"]
                               + (1 - acceptance) + r["score_ms_per_call"] / per_step, 3)
        r["acceptance"] = acceptance
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="*", default=["8x96"], help="random-weight models LxW to compare")
    parser.add_argument("--problems", type=int, default=48)
    parser.add_argument("--n", type=int, default=4, help="draws per problem (the default n_small)")
    parser.add_argument("--acceptance", type=float, default=0.85, help="acceptance rate of the gsi estimate")
    parser.add_argument("--out", type=Path, help="write the records as JSON here")
    args = parser.parse_args(argv)
    records = measure(args.shapes, args.problems, args.n, args.acceptance)
    big = next(r for r in records if r["model"] == "big")
    print(f"{'model':>6} {'layers x width':>14} {'params':>9} {'sample ms/token':>16} {'score ms/call':>14}"
          f" {'sample vs big':>14} {'gsi estimate':>13}")
    for r in records:
        est = f"{r['gsi_estimate']:>13.2f}" if "gsi_estimate" in r else f"{'':>13}"
        print(f"{r['model']:>6} {r['layers']:>7} x {r['width']:<4} {r['parameters']:>9} {r['sample_ms_per_token']:>16.2f}"
              f" {r['score_ms_per_call']:>14.2f} {r['sample_ms_per_token'] / big['sample_ms_per_token']:>14.2f} {est}")
    print(f"gsi estimate: gsi / soft_bon_big latency at batch 1 estimated, that model as pi_B, acceptance {args.acceptance}")
    if args.out:
        args.out.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
