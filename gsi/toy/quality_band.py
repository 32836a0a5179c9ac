"""The quality band that retraining a toy model must reach on a CPU kind other than the
one its weights were trained on, measured over several seeds and written into the
model's ``train_meta.json`` (key ``retrain_band``).

    python -m gsi.toy.quality_band --which prm,small,big --seeds 1,2 --work /tmp/band

Float rounding differs between CPU kinds (AVX512 vs AVX2 kernels) from the first step on,
so a retraining elsewhere is a fresh draw from the training procedure, much like another
seed. The band is therefore the spread over seeds (the committed weights count as seed 0)
widened by a margin: held-out AUC for the PRM (higher is better), held-out NLL of the
reference solutions for the LMs (lower is better).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from gsi.toy.fit import machine

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
AUC_MARGIN = 0.03  # below the worst seed; never below chance + this margin
NLL_FACTOR, NLL_MARGIN = 1.25, 0.01  # bound = factor * worst seed + margin


def quality(which: str, path: Path) -> float:
    """Held-out AUC (PRM) or held-out NLL (LMs) of the model in ``path``."""
    from gsi.toy.evaluate import heldout_auc, heldout_nll

    if which == "prm":
        from gsi.rewards.prm import HFQwenPRM

        from gsi.toy.train_prm import PRMSpec

        return heldout_auc(HFQwenPRM(str(path), name="toy_prm", num_threads=1), world=PRMSpec().world)["auc"]
    return round(heldout_nll(path), 5)


def passes(which: str, value: float, band: dict) -> bool:
    """Whether a retrained model's quality ``value`` lies inside ``band``."""
    return value >= band["bound"] if which == "prm" else value <= band["bound"]


def band_of(which: str, values: dict[int, float]) -> dict:
    worst = min(values.values()) if which == "prm" else max(values.values())
    if which == "prm":
        bound = round(max(0.5 + AUC_MARGIN, worst - AUC_MARGIN), 4)
        metric = "heldout_auc (at least bound)"
    else:
        bound = round(NLL_FACTOR * worst + NLL_MARGIN, 5)
        metric = "heldout_nll (at most bound)"
    return {"metric": metric, "seeds": {str(s): v for s, v in sorted(values.items())},
            "bound": bound, "measured_on": machine()}


def train_seed(which: str, seed: int, work: Path) -> Path:
    """Train ``which`` with ``seed`` under ``work/seed<seed>`` unless it is there already."""
    out = work / f"seed{seed}"
    meta = out / which / "train_meta.json"
    if not (meta.exists() and json.loads(meta.read_text())["seed"] == seed):
        if which == "prm":
            from gsi.toy.train_prm import train

            train(out, seed=seed, evaluate=False)
        else:
            from gsi.toy.train import train

            train(which, out, seed=seed)
    return out / which


def measure(which: str, seeds: list[int], work: Path, assets: Path = ASSETS) -> dict:
    """Measure the band over the committed weights (their own seed, usually 0) and
    ``seeds``; record it."""
    meta_path = assets / which / "train_meta.json"
    committed = int(json.loads(meta_path.read_text()).get("seed", 0))
    if committed in seeds:
        raise ValueError(f"seed {committed} is the committed {which}'s own seed; give other seeds")
    values = {committed: quality(which, assets / which)}
    for seed in seeds:
        values[seed] = quality(which, train_seed(which, seed, work))
        log.info("%s seed %d: %s", which, seed, values[seed])
    band = band_of(which, values)
    meta = json.loads(meta_path.read_text())
    meta["retrain_band"] = band
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log.info("%s band: %s", which, band)
    return band


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="prm,small,big", help="comma list of prm,small,big")
    parser.add_argument("--seeds", default="1,2", help="seeds besides the committed seed 0")
    parser.add_argument("--work", type=Path, required=True, help="where the extra seeds are trained")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        parser.error("--seeds: give at least two seeds other than the committed weights' own (recorded in train_meta.json)")
    for which in args.which.split(","):
        if which not in ("prm", "small", "big"):
            parser.error(f"--which: unknown model {which!r}; choose from prm, small, big")
        measure(which, seeds, args.work)


if __name__ == "__main__":
    main()
