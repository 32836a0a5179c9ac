"""Benchmark the decoding loop on the toy world, all cases in one process and one run.

    python -m analysis.benchmark [--quick] [--out DIR] [--problems N] [--backends vllm,...]

Part 1 (batching): ``method=gsi`` at batch sizes 1 (the reference code's per-problem
shape), 8, 32 and 64: problems per second, latency, time inside small-model, big-model
and reward calls, overhead fraction and peak memory. Part 2 (the paper's latency claim):
``gsi`` against ``soft_bon_big`` and ``soft_bon_small`` at equal n and batch 64, with the
acceptance rate. Every installed backend gets its own rows (transformers always; vLLM
when importable and its toy-model config exists). Part 3 (engines): one decoding step's
model calls, 32 problems x 16 candidates sampled by the small model and scored by the big
one, per backend. Ratios are computed inside one run, so they are comparable even on a
shared, noisy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from analysis.meters import PeakRSS, Timed
from gsi.outputs import atomic_write_json

log = logging.getLogger(__name__)
CONF = Path(__file__).resolve().parents[1] / "conf"
RECORD_KEYS = [
    "part", "backend", "method", "batch_size", "n", "num_problems", "problems_per_s", "latency_mean_s",
    "overhead_fraction", "wall_time_s", "acceptance_rate", "peak_rss_mb",
]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import gsi.config

    gsi.config.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=["progress=false", *overrides])


SPLIT = ("sample", "reward", "score", "fallback")


def run_case(backend: str, overrides: list[str], components: dict, part: str = "") -> dict:
    """One configuration through the pipeline's own run (``gsi.pipeline.run_problems``);
    models are loaded once per backend. Records the per-step split of the time:
    proposal sampling, reward, big-model scoring and the big model's fallback sampling."""
    from gsi.config import validate
    from gsi.grading import get_grader
    from gsi.metrics import compute_metrics
    from gsi.pipeline import build_components, load_problems, run_problems

    cfg = compose(overrides)
    settings = validate(cfg)
    if backend not in components:
        components[backend] = build_components(cfg, need_small=True, need_big=True)
    small, big, reward = components[backend]
    clock: dict[str, float] = {}
    proposer_small = settings.method.proposer == "small"
    timed = (
        Timed(small, clock, "sample", "score"),
        Timed(big, clock, "fallback" if proposer_small else "sample", "score"),
        Timed(reward, clock, "", "reward"),
    )
    problems = load_problems(cfg)
    rows: list[dict] = []
    with PeakRSS() as mem:
        start = time.perf_counter()
        stats = run_problems(settings, timed, get_grader(cfg.dataset.grader), problems,
                             lambda r: rows.append(r.to_json()))
        wall = time.perf_counter() - start
    m = compute_metrics(rows, stats, wall, len(problems))
    if m["num_errors"]:
        first = next(r for r in rows if r["stop_reason"] == "error")
        raise RuntimeError(f"{m['num_errors']} of {len(problems)} problems failed ({first.get('error')}) with "
                           f"{' '.join(overrides)}: timings of failed problems mean nothing")
    steps = max(stats.steps, 1)
    return {
        "part": part,
        "backend": backend,
        "method": settings.method.name,
        "batch_size": settings.batch_size,
        "n": settings.n_small,
        "num_problems": len(problems),
        "problems_per_s": m["problems_per_s"],
        "latency_mean_s": m["latency_mean_s"],
        "latency_p50_s": m["latency_p50_s"],
        "latency_p95_s": m["latency_p95_s"],
        "overhead_fraction": m["overhead_fraction"],
        "wall_time_s": wall,
        "acceptance_rate": m["acceptance_rate"],
        "accuracy": m["accuracy"],
        "time_small_s": m["time_small_s"],
        "time_big_s": m["time_big_s"],
        "time_reward_s": m["time_reward_s"],
        "loop_steps": stats.steps,
        **{f"step_{k}_s": clock.get(k, 0.0) / steps for k in SPLIT},
        "peak_rss_mb": mem.peak_kb / 1024,
    }


def backends() -> dict[str, list[str]]:
    """Installed backends and the overrides that select them."""
    found = {"transformers": []}
    if importlib.util.find_spec("vllm") is not None and (CONF / "model" / "toy_vllm.yaml").exists():
        found["vllm"] = ["model=toy_vllm"]
    return found


@contextlib.contextmanager
def code_before(big):
    """A vLLM backend scoring as before issue #20: no prefix-cache read, the temperature
    outside the logits (whole-vocabulary rows rebuilt per position)."""
    saved = big.read_prefix_cache, big.temperature_in_logits
    big.read_prefix_cache, big.temperature_in_logits = False, False
    try:
        yield big
    finally:
        big.read_prefix_cache, big.temperature_in_logits = saved


def step_timing(backend: str, components: dict, repeats: int) -> dict:
    """Fastest of ``repeats`` single decoding steps: 32 toy problems x 16 candidates
    sampled by the small model, then scored by the big model (on vLLM also as the code
    before issue #20 scored, ``score_uncached_s``: see :func:`code_before`)."""
    from gsi.toy.task import generate_problems
    from gsi.types import SamplingParams

    small, big, _ = components[backend]
    prompts = [p.prompt for p in generate_problems(32, 99, True, 2, 3)]
    params = SamplingParams(0.7, 1.0, 16)
    best = {"backend": backend, "problems": 32, "n": 16, "sample_s": float("inf"), "score_s": float("inf")}
    # as in a run: the big model has seen the prefixes (the previous step's scoring), not
    # the candidates, which are new each step (each repeat draws its own: the same seeds
    # would redraw the same candidates, and scoring them again finds them in the cache)
    big.sample(prompts, 1, list(range(32)), replace(params, max_tokens=1))
    for rep in range(repeats):
        start = time.perf_counter()
        steps = small.sample(prompts, 16, [1000 * rep + i for i in range(32)], params)
        mid = time.perf_counter()
        big.score(prompts, steps, params)
        end = time.perf_counter()
        best["sample_s"] = min(best["sample_s"], mid - start)
        best["score_s"] = min(best["score_s"], end - mid)
        if hasattr(big, "read_prefix_cache"):
            with code_before(big):
                begin = time.perf_counter()
                big.score(prompts, steps, params)
                uncached = time.perf_counter() - begin
            best["score_uncached_s"] = min(best.get("score_uncached_s", float("inf")), uncached)
    best["step_s"] = best["sample_s"] + best["score_s"]
    return best


def plan(quick: bool, problems: int) -> list[tuple[str, list[str]]]:
    batches = [1, 64] if quick else [1, 8, 32, 64]
    n = 4
    common = [f"limit={problems}", f"n_small={n}", f"n_big={n}"]
    cases = [("batching", ["method=gsi", f"batch_size={b}", *common]) for b in batches]
    cases += [
        ("methods", [f"method={m}", "batch_size=64", *common])
        for m in ["gsi", "soft_bon_big", "soft_bon_small"]
    ]
    # the latency shape (one problem at a time, as the reference code runs): soft_bon_big
    # against the batching part's gsi at batch 1
    cases.append(("latency", ["method=soft_bon_big", "batch_size=1", *common]))
    return cases


def format_table(records: list[dict]) -> str:
    head = (f"{'backend':<12} {'method':<15} {'batch':>5} {'n':>3} {'probs':>5} {'prob/s':>8} "
            f"{'lat_mean':>8} {'lat_p95':>8} {'small_s':>8} {'big_s':>8} {'reward_s':>8} "
            f"{'overhead':>8} {'wall_s':>7} {'accept':>6} {'acc':>5} {'rss_mb':>7} "
            f"{'st_samp':>7} {'st_rew':>7} {'st_score':>8} {'st_fall':>7}")
    lines = [head, "-" * len(head)]
    for r in records:
        r = {k: float("nan") if v is None else v for k, v in r.items()}  # e.g. no step chosen: no acceptance
        lines.append(
            f"{r['backend']:<12} {r['method']:<15} {r['batch_size']:>5} {r['n']:>3} {r['num_problems']:>5} "
            f"{r['problems_per_s']:>8.2f} {r['latency_mean_s']:>8.3f} {r['latency_p95_s']:>8.3f} "
            f"{r['time_small_s']:>8.2f} {r['time_big_s']:>8.2f} {r['time_reward_s']:>8.3f} "
            f"{r['overhead_fraction']:>8.3f} {r['wall_time_s']:>7.2f} {r['acceptance_rate']:>6.2f} "
            f"{r['accuracy']:>5.2f} {r['peak_rss_mb']:>7.0f} "
            f"{r['step_sample_s']:>7.4f} {r['step_reward_s']:>7.4f} {r['step_score_s']:>8.4f} {r['step_fallback_s']:>7.4f}"
        )
    return "\n".join(lines)


def ratios(records: list[dict]) -> list[str]:
    """The targets of the performance issue, as ratios measured in this run."""
    out = []
    for backend in sorted({r["backend"] for r in records}):
        rows = [r for r in records if r["backend"] == backend]
        by_batch = {r["batch_size"]: r for r in rows if r["part"] == "batching"}
        if 1 in by_batch and 64 in by_batch:
            speedup = by_batch[64]["problems_per_s"] / by_batch[1]["problems_per_s"]
            out.append(f"{backend}: batch 64 vs 1 problems/s = {speedup:.1f}x (target >= 6x)")
            out.append(f"{backend}: overhead at batch 64 = {by_batch[64]['overhead_fraction']:.1%} (target <= 10%)")
        alone = [r for r in rows if r["part"] == "latency"]
        if 1 in by_batch and alone:
            g, b = by_batch[1], alone[0]
            out.append(f"{backend}: wall gsi / soft_bon_big at batch 1 = {g['wall_time_s'] / b['wall_time_s']:.2f} "
                       f"(acceptance {g['acceptance_rate']:.2f})")
        last = {r["method"]: r for r in rows if r["part"] == "methods"}
        if {"gsi", "soft_bon_big", "soft_bon_small"} <= set(last):
            g, b, s = last["gsi"], last["soft_bon_big"], last["soft_bon_small"]
            out.append(
                f"{backend}: wall gsi / soft_bon_big = {g['wall_time_s'] / b['wall_time_s']:.2f} "
                f"(target <= 0.7 at acceptance >= 0.7; acceptance {g['acceptance_rate']:.2f}), "
                f"gsi / soft_bon_small = {g['wall_time_s'] / s['wall_time_s']:.2f}"
            )
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="Benchmark the gsi decoding loop on the toy world.")
    parser.add_argument("--quick", action="store_true", help="batch sizes 1 and 64 only (< 5 min)")
    parser.add_argument("--problems", type=int, default=None, help="problems per case (default 64)")
    parser.add_argument("--out", type=Path, default=None, help="write DIR/benchmark.json")
    parser.add_argument(
        "--repeats", type=int, default=None,
        help="runs of each case, interleaved; the fastest is kept (default 3, quick 2)",
    )
    parser.add_argument(
        "--backends", default=None,
        help="comma-separated subset of the installed backends (default: all of them)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the prefix-length scaling records")
    parser.add_argument("--gpu", action="store_true",
                        help="paper-shape random-weight models on vLLM (analysis/gpu_bench.py); needs a CUDA GPU")
    parser.add_argument("--dry-run", action="store_true", help="with --gpu: tiny shapes on this machine's vLLM")
    args = parser.parse_args(argv)
    if args.gpu:
        from analysis.gpu_bench import main as gpu_main

        engines = (args.backends or "vllm").split(",")
        unknown = [e for e in engines if e not in ("vllm", "transformers")]
        if unknown:
            parser.error(f"--gpu --backends {','.join(unknown)}: choose vllm and/or transformers")
        return [r for engine in engines for r in gpu_main(args.out, args.dry_run, engine)]
    if not args.no_scaling:
        # the long-prefix engines need it; vLLM reads its environment once, at the first engine
        os.environ.setdefault("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    installed = backends()
    chosen = list(installed) if args.backends is None else args.backends.split(",")
    unknown = [b for b in chosen if b not in installed]
    if unknown:
        parser.error(f"--backends {','.join(unknown)}: not installed; choose from {','.join(installed)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    problems = args.problems or 64
    repeats = args.repeats or (2 if args.quick else 3)
    records: list[dict] = []
    steps: list[dict] = []
    for backend in chosen:
        extra = installed[backend]
        components: dict = {}
        cases = plan(args.quick, problems)
        best: dict[int, dict] = {}
        # Round-robin over the cases so a burst of load on a shared machine hits them
        # alike; keep each case's fastest run.
        for rep in range(repeats):
            for k, (part, overrides) in enumerate(cases):
                rec = run_case(backend, [*overrides, *extra], components, part)
                log.info(
                    "[%d/%d] %s %s batch=%d: %.2f problems/s", rep + 1, repeats, backend,
                    rec["method"], rec["batch_size"], rec["problems_per_s"],
                )
                if k not in best or rec["wall_time_s"] < best[k]["wall_time_s"]:
                    best[k] = rec
        records += [best[k] for k in range(len(cases))]
        steps.append(step_timing(backend, components, repeats))
    scaling: list[dict] = []
    if not args.no_scaling:
        from analysis.scaling import measure

        for backend in chosen:
            scaling += measure(backend, repeats)
    print(format_table(records))
    for line in ratios(records):
        print(line)
    for st in steps:
        print(f"{st['backend']}: one step, 32 problems x 16 candidates: sample {st['sample_s']:.3f} s "
              f"+ score {st['score_s']:.3f} s = {st['step_s']:.3f} s")
    for st in steps:
        if "score_uncached_s" in st:
            before = st["sample_s"] + st["score_uncached_s"]
            print(f"{st['backend']}: step as scored before #20 (no cache read, whole-vocabulary rows) {before:.3f} s: "
                  f"{before / st['step_s']:.2f}x the step with it")
    if scaling:
        from analysis.scaling import growth

        print("\n".join(growth(scaling)))
    if len(steps) > 1:
        base = steps[0]
        for st in steps[1:]:
            print(f"{st['backend']} / {base['backend']} step time = {st['step_s'] / base['step_s']:.2f}")
    if args.out is not None:
        atomic_write_json(args.out / "benchmark.json", {"cases": records, "scaling": scaling})
        atomic_write_json(args.out / "benchmark_step.json", steps)
        print(f"wrote {args.out / 'benchmark.json'} and benchmark_step.json")
    return records


if __name__ == "__main__":
    main()
