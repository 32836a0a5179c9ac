"""``python -m analysis.reference_effects [--problems N] [--out FILE]``: how much each
difference between this project and the reference code (j-geuter/GSI) matters, measured
on enumerable worlds (exact laws, :mod:`gsi.exact`) and on the toy world (real loop).

1. Untempered importance weights: the reference samples at T = 0.7 but weights with raw
   (T = 1) log-probs. At step level raw log pi = T * tempered log pi + a constant, so its
   SNIS weights are exp(beta r) (pi_B/pi_S)^T under the tempered laws; as n -> inf its step
   law tends to pi_S^T exp(beta r) (pi_B^T/pi_S^T)^T normalised, not to the target.
2. The 0.1 reward floor and the raw-reward threshold of main.py's defaults, on the toy world.
3. The PRM read at a spurious empty trailing step (:mod:`gsi.rewards.reference_reading`),
   with the toy PRM, on the toy world.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Sequence

import numpy as np

from gsi.exact.distributions import method_step, target_step, tv
from gsi.exact.world import random_world
from gsi.methods import METHODS, Method, MethodParams, StepScores
from gsi.methods.selection import clean, tempered_probabilities
from gsi.types import SamplingParams

ROOT = Path(__file__).resolve().parents[1]


def untempered_method(temperature: float) -> Method:
    """gsi_no_reject with the reference's weights: log-ratio of raw log-probs = T * tempered."""

    def probabilities(scores: StepScores, params: MethodParams):
        ratio = temperature * (clean(scores.logp_target) - clean(scores.logp_proposal))
        return tempered_probabilities(params.beta, scores.rewards, ratio)

    return Method("gsi_untempered", "small", "n_small", True, True, probabilities)


def untempered_tv(seeds: Sequence[int], gaps: Sequence[float], betas: Sequence[float], temperature: float,
                  ns: Sequence[int]) -> list[dict]:
    """TV to pi_beta,B of the project's and the reference's weighting, exact at each n and in the limit."""
    sampling = SamplingParams(temperature, 1.0, 8)
    reference, project = untempered_method(temperature), METHODS["gsi_no_reject"]
    out = []
    for beta in betas:
        params = MethodParams(beta, -np.inf)
        for seed in seeds:
            for gap in gaps:
                laws = random_world(seed, gap, num_steps=4).laws((), sampling)
                target = target_step(laws, beta)
                limit = laws.small * np.exp(beta * laws.rewards) * (laws.big / laws.small) ** temperature
                row = {"beta": beta, "seed": seed, "gap": gap, "d_tv_small_big": tv(laws.small, laws.big),
                       "reference_limit": tv(np.append(limit / limit.sum(), 0.0), target)}
                for n in ns:
                    row[f"reference_n{n}"] = tv(method_step(reference, laws, params, n, n).probs, target)
                    row[f"project_n{n}"] = tv(method_step(project, laws, params, n, n).probs, target)
                out.append(row)
    return out


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    import gsi.config

    gsi.config.register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["progress=false", "tracking=none", *overrides])


def decode(cfg, wrap_reward=None) -> dict:
    """Run the real loop on ``cfg``; accuracy, acceptance and stop reasons over its problems."""
    from gsi.config import validate
    from gsi.decoding import Decoder
    from gsi.grading import get_grader
    from gsi.pipeline import build_components, load_problems

    settings = validate(cfg)
    small, big, reward = build_components(cfg, True, settings.method.uses_big)
    if wrap_reward is not None:
        reward = wrap_reward(reward)
    results: list = []
    Decoder(settings, small, big, reward, get_grader(cfg.dataset.grader)).run(load_problems(cfg), results.append)
    steps = sum(r.steps for r in results)
    return {
        "problems": len(results),
        "accuracy": float(np.mean([r.correct for r in results])),
        "acceptance_rate": sum(r.accepted_steps for r in results) / steps if steps else 0.0,
        "low_reward_stops": sum(r.stop_reason == "low_reward" for r in results),
        "tokens_big": sum(r.tokens_big for r in results),
    }


TOY = ["model=toy", "reward=toy_verifier", "dataset=toy_arith", "n_small=4", "n_big=4",
       "max_steps=8", "max_step_tokens=16", "batch_size=64"]


def toy_effects(problems: int) -> dict[str, dict]:
    from gsi.rewards.reference_reading import TrailingEmptyStep

    limit = f"limit={problems}"
    out = {
        "reference_slurm": decode(_compose("+experiment=reference_slurm", *TOY, limit)),
        "reference_slurm stop_below=null": decode(_compose("+experiment=reference_slurm", *TOY, limit, "stop_below=null")),
        "reference (raw r > 10)": decode(_compose("+experiment=reference", *TOY, limit)),
        "paper rules (gsi, u=0.5)": decode(_compose(*TOY, limit, "beta=20", "threshold=0.5")),
    }
    prm = ["reward=toy_prm", limit, "n_small=4", "n_big=4"]
    for method in ("gsi", "soft_bon_small"):
        out[f"toy_prm {method}: own step"] = decode(_compose(*prm, f"method={method}"))
        out[f"toy_prm {method}: trailing empty step"] = decode(_compose(*prm, f"method={method}"), TrailingEmptyStep)
    return out


def summary(rows: list[dict], ns: Sequence[int]) -> str:
    lines = ["| β | instances | d_TV(π_S, π_B) | " + " | ".join(f"n={n}: project / reference" for n in ns)
             + " | n→∞: reference |", "|---:|---:|---|" + "---|" * len(ns) + "---|"]
    for beta in sorted({r["beta"] for r in rows}):
        sub = [r for r in rows if r["beta"] == beta and r["gap"] > 0]

        def rng(key: str) -> str:
            vals = [r[key] for r in sub]
            return f"{min(vals):.3f}–{max(vals):.3f} (median {statistics.median(vals):.3f})"

        cells = [f"{statistics.median(r[f'project_n{n}'] for r in sub):.3f} / "
                 f"{statistics.median(r[f'reference_n{n}'] for r in sub):.3f}" for n in ns]
        lines.append(f"| {beta:g} | {len(sub)} | {rng('d_tv_small_big')} | " + " | ".join(cells)
                     + f" | {rng('reference_limit')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.reference_effects", description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=200, help="toy problems per run (0: skip the toy runs)")
    parser.add_argument("--out", type=Path, default=None, help="write every number as JSON here")
    args = parser.parse_args(argv)
    ns = (4, 16, 64)
    rows = untempered_tv(range(6), (0.25, 0.5, 1.0), (1.0, 5.0, 20.0), 0.7, ns)
    print("Untempered importance weights at T = 0.7 (median TV to π_β,B over random K = 4 steps):\n")
    print(summary(rows, ns))
    toy = toy_effects(args.problems) if args.problems else {}
    if toy:
        print("\nToy world (seed 0, first %d problems):\n" % args.problems)
        print("| run | accuracy | acceptance | low-reward stops | tokens big |\n|---|---:|---:|---:|---:|")
        for name, m in toy.items():
            print(f"| {name} | {m['accuracy']:.3f} | {m['acceptance_rate']:.3f} | {m['low_reward_stops']} | {m['tokens_big']} |")
    if args.out is not None:
        args.out.write_text(json.dumps({"untempered": rows, "toy": toy}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
