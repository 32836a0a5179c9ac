"""How close each method comes to the tilted target pi_B * exp(beta r), measured.

``python -m analysis.exactness [--quick] [--out DIR]`` sweeps n, beta, the threshold and
the pi_S-pi_B distance on enumerable worlds (:mod:`gsi.exact`) and writes

- ``DIR/exactness.json``: a list of records with the keys ``method``, ``n``, ``beta``,
  ``threshold`` (null for methods that never reject), ``distance`` (d_TV(pi_S, pi_B) of
  the instance: of the step law, or of whole solutions for tree instances), ``tv``,
  ``kl`` (KL(method || target); null when infinite), ``tv_se`` (Monte-Carlo standard
  error, 0 where exact), ``expected_reward``, ``target_expected_reward``;
- ``DIR/exactness.csv`` and ``DIR/exactness.md``: the same rows, in the same order,
  with what identifies them (sweep, instance, level, estimator, replicas,
  KL(pi_B || pi_S), acceptance rate, expected big-model tokens per solution, and for
  ``gsi_no_reject`` / ``gsi_consistent`` / ``soft_bon_big`` the bounds of docs/BOUNDS.md);
- ``DIR/tv_vs_n.png``, ``DIR/tv_vs_distance.png``, ``DIR/acceptance_vs_threshold.png``,
  ``DIR/cost_vs_tv.png``, ``DIR/bound_vs_tv.png``.

``--rate`` adds the sweeps ``loop_check`` (the structured instances decoded through the loop
at n = 256, next to their exact laws) and ``rate`` (misses_best's exact TV at n = 400, 401 for
``gsi_consistent`` and ``gsi_no_reject``, where it crosses 0.02).

n is both n_S and n_B. Per-step laws are exact (multinomial enumeration through the
methods' own code) where the number of count vectors allows, otherwise measured by
running the decoding loop on many replicas.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from gsi.exact import bounds
from gsi.exact import distributions as dist
from gsi.exact import montecarlo
from gsi.exact import world as worlds
from gsi.exact.world import World
from gsi.methods import METHODS, Method, MethodParams
from gsi.outputs import atomic_write_json, atomic_write_text
from gsi.types import SamplingParams

log = logging.getLogger("analysis.exactness")

RECORD_KEYS = [
    "method",
    "n",
    "beta",
    "threshold",
    "distance",
    "tv",
    "kl",
    "tv_se",
    "expected_reward",
    "target_expected_reward",
]
EXTRA_KEYS = [
    "sweep",
    "instance",
    "level",
    "estimator",
    "replicas",
    "noise_floor",
    "kl_big_small",
    "acceptance_rate",
    "expected_big_tokens",
    "bound",
    "explicit_bound",
]
TILTED = ["gsi", "gsi_consistent", "gsi_no_reject", "rsd", "soft_bon_small", "soft_bon_big"]


@dataclass(frozen=True)
class Plan:
    """One sweep's sizes; ``quick`` is the reduced one."""

    betas: tuple[float, ...]
    ns: tuple[int, ...]
    structured_ns: tuple[int, ...]  # n on the structured instances
    exact_max_n: int  # larger n on K = 4 instances go through the decoding loop
    replicas: int
    seeds: int
    gaps: tuple[float, ...]
    distance_ns: tuple[int, ...]
    thresholds: tuple[float, ...]
    tree_depth: int
    tree_ns: tuple[int, ...]
    main_steps: int = 4  # K of the random instances (K = 3: exact at every n)
    structured_exact_max_n: int | None = None  # exact up to this n on the structured instances
    loop_check_n: int | None = None  # also decode the structured instances at this n (Monte Carlo)
    rate_ns: tuple[int, ...] = ()  # misses_best: exact laws of the SIR methods at these n too


FULL = Plan(
    betas=(1.0, 5.0, 20.0),
    ns=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    structured_ns=(1, 2, 4, 8, 16, 64, 256),
    exact_max_n=16,
    replicas=5_000,
    seeds=6,
    gaps=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    distance_ns=(16, 64),
    thresholds=(-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
    tree_depth=2,
    tree_ns=(1, 4, 16, 64, 256),
    main_steps=3,
)
# misses_best's exact TV at the n where it reaches 0.02 (docs/BOUNDS.md section 5): minutes
# per record, so only with --rate (and the structured instances exact up to n = 256).
RATE = dict(structured_exact_max_n=256, loop_check_n=256, rate_ns=(400, 401))
QUICK = Plan(
    betas=(5.0,),
    ns=(1, 2, 4, 8, 16, 32, 256),
    structured_ns=(1, 2, 4, 8, 16, 32),
    exact_max_n=32,
    replicas=5_000,
    seeds=3,
    gaps=(0.0, 0.25, 0.5, 0.75, 1.0),
    distance_ns=(16,),
    thresholds=(-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5),
    tree_depth=2,
    tree_ns=(1, 4, 16, 64),
)
SAMPLING = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=64)
THRESHOLD = 0.5  # u for gsi and rsd outside the threshold sweep
MAIN_SEED, MAIN_GAP = 1, 0.6  # the random instance of the n and threshold sweeps


# ---------------------------------------------------------------- one measurement
def measure(
    world: World,
    method: str | Method,
    n: int,
    beta: float,
    threshold: float,
    *,
    monte_carlo: bool = False,
    replicas: int = 0,
    seed: int = 0,
    sampling: SamplingParams = SAMPLING,
) -> dict[str, Any]:
    """TV / KL to the target and expected rewards of ``method`` on ``world`` (whole
    solutions; for a one-step world, the step), exact or by decoding ``replicas``."""
    m = METHODS[method] if isinstance(method, str) else method
    params = MethodParams(beta, threshold)
    target = dist.target_solution(world, beta, sampling)
    rewards = dist.leaf_rewards(world)
    small, big = world.solution_laws(sampling)
    if monte_carlo:
        est = montecarlo.decode(world, m, params, n, n, sampling, replicas, seed=seed)
        probs, acceptance = est.probs, est.acceptance_rate
        big_tokens = est.tokens_big / est.replicas
        tv, tv_se = montecarlo.tv_with_se(est, target, seed=seed)
    else:
        law = dist.method_solution(world, m, params, n, n, sampling)
        probs, acceptance = law.probs, law.acceptance_rate
        big_tokens = law.expected_big_candidates * len(world.text(0))  # every step text has this length
        tv, tv_se = dist.tv(probs, target), 0.0
    bounded = m.name in bounds.BOUNDED
    return {
        "method": m.name,
        "n": n,
        "beta": beta,
        "threshold": threshold if m.rejects else None,
        "distance": dist.tv(small, big),
        "tv": tv,
        "kl": _finite(dist.kl(probs, target)),
        "tv_se": tv_se,
        "expected_reward": float(probs @ rewards),
        "target_expected_reward": float(target @ rewards),
        "instance": world.name,
        "level": "step" if world.depth == 1 else "solution",
        "estimator": "monte_carlo" if monte_carlo else "exact",
        "replicas": replicas if monte_carlo else 0,
        "kl_big_small": _finite(dist.kl(big, small)),
        "acceptance_rate": acceptance,
        "noise_floor": montecarlo.noise_floor(target, replicas) if monte_carlo else 0.0,
        "expected_big_tokens": big_tokens,
        "bound": bounds.solution_bound(world, m.name, params, n, n, sampling) if bounded else None,
        "explicit_bound": (
            bounds.solution_bound(world, m.name, params, n, n, sampling, explicit=True) if bounded else None
        ),
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------- the sweeps
def _ns(world: World, ns: tuple[int, ...], exact_max_n: int) -> list[tuple[int, bool]]:
    """(n, Monte Carlo?) per n: exact where K <= 3 or n <= exact_max_n, and where the
    exact law's count vectors (:func:`dist.num_likely_count_vectors`) are few enough."""
    laws = world.laws((), SAMPLING)
    out = []
    for n in ns:
        exact = world.num_steps <= 3 or n <= exact_max_n
        exact = exact and all(dist.num_likely_count_vectors(n, q) <= dist.MAX_COUNT_VECTORS
                              for q in (laws.small, laws.big))
        out.append((n, not exact))
    return out


def sweep(plan: Plan) -> Iterator[dict[str, Any]]:
    """Every record of the sweep, in a stable order."""
    main = worlds.random_world(seed=MAIN_SEED, gap=MAIN_GAP, num_steps=plan.main_steps)
    main_ns = _ns(main, plan.ns, plan.exact_max_n)
    for beta in plan.betas:  # TV vs n on a random instance, exact then Monte Carlo
        for method in TILTED:
            for n, mc in main_ns:
                yield {
                    "sweep": "n",
                    **measure(main, method, n, beta, THRESHOLD, monte_carlo=mc, replicas=plan.replicas),
                }
    structured_max_n = plan.exact_max_n if plan.structured_exact_max_n is None else plan.structured_exact_max_n
    for world in (worlds.misses_best(), worlds.overconfident()):  # structured instances
        ns = _ns(world, plan.structured_ns, structured_max_n)
        for method in TILTED:
            for n, mc in ns:
                yield {
                    "sweep": "n",
                    **measure(world, method, n, 5.0, THRESHOLD, monte_carlo=mc, replicas=plan.replicas),
                }
        if plan.loop_check_n is not None:  # the same law through the decoding loop
            for method in ("gsi", "gsi_consistent"):
                record = measure(world, method, plan.loop_check_n, 5.0, THRESHOLD, monte_carlo=True,
                                 replicas=plan.replicas)
                yield {"sweep": "loop_check", **record}
    slow = worlds.misses_best()  # where the importance weights are heavy: how n reaches the target
    for n, mc in _ns(slow, plan.rate_ns, max(plan.rate_ns, default=0)):
        for method in ("gsi_consistent", "gsi_no_reject"):
            yield {"sweep": "rate", **measure(slow, method, n, 5.0, THRESHOLD, monte_carlo=mc,
                                               replicas=plan.replicas)}
    tree = worlds.random_world(seed=MAIN_SEED, gap=MAIN_GAP, num_steps=3, depth=plan.tree_depth)
    for method in TILTED:  # whole solutions
        for n in plan.tree_ns:
            yield {"sweep": "n", **measure(tree, method, n, 5.0, THRESHOLD)}
    for seed in range(plan.seeds):  # TV vs the pi_S-pi_B distance
        for gap in plan.gaps:
            world = worlds.random_world(seed=100 + seed, gap=gap, num_steps=plan.main_steps)
            for method in TILTED:
                for n in plan.distance_ns:
                    yield {"sweep": "distance", **measure(world, method, n, 5.0, THRESHOLD)}
    for method in ("gsi", "gsi_consistent", "rsd"):  # acceptance vs threshold
        for u in plan.thresholds:
            yield {"sweep": "threshold", **measure(main, method, 16, 5.0, u)}


# ---------------------------------------------------------------- outputs
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_outputs(records: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "exactness.json", [{k: r[k] for k in RECORD_KEYS} for r in records])
    columns = EXTRA_KEYS[:4] + RECORD_KEYS + EXTRA_KEYS[4:]
    lines = [",".join(columns)]
    for r in records:
        cells = [_cell(r[c]) for c in columns]
        lines.append(",".join(f'"{c}"' if "," in c else c for c in cells))
    atomic_write_text(out / "exactness.csv", "\n".join(lines) + "\n")
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_cell(r[c]) for c in columns) + " |" for r in records]
    atomic_write_text(out / "exactness.md", "\n".join(md) + "\n")
    from analysis.exactness_plots import plot_all

    plot_all(records, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.exactness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="reduced sweep (still up to n = 256), ~1-3 min")
    parser.add_argument("--out", type=Path, default=Path("outputs/exactness"), help="output directory")
    parser.add_argument(
        "--rate", action="store_true",
        help="also: structured instances exact up to n = 256, a loop check there, misses_best at n = 400, 401 "
        "(minutes per record at n = 400: about 15 min more on a quiet core)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    plan = QUICK if args.quick else FULL
    if args.rate:
        plan = dataclasses.replace(plan, **RATE)
    start = time.perf_counter()
    records = []
    for record in sweep(plan):
        records.append(record)
        if len(records) % 25 == 0:
            log.info("%d records (%.0f s)", len(records), time.perf_counter() - start)
    write_outputs(records, args.out)
    summary = [r for r in records if r["sweep"] == "n" and r["n"] == max(plan.ns) and r["level"] == "step"]
    log.info("%d records in %.1f s -> %s", len(records), time.perf_counter() - start, args.out)
    for r in summary:
        log.info(
            "%-15s %-28s beta=%-4g n=%-4d tv=%.4f±%.4f (%s)",
            r["method"],
            r["instance"],
            r["beta"],
            r["n"],
            r["tv"],
            r["tv_se"],
            r["estimator"],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
