"""The quality band that retraining a toy model must reach on a CPU kind other than the
one its weights were trained on, measured over draws and written into the model's
``train_meta.json`` (key ``retrain_band``).

    python -m gsi.toy.quality_band --which prm,small,big --seeds 1,2 --work /tmp/band

Float rounding differs between CPU kinds (AVX-512, AVX2 and plain SSE kernels in torch,
MKL and oneDNN) from the first step on, so a retraining elsewhere is a fresh draw from the
training procedure, much like another seed. A band from seeds on one kind alone proved too
narrow (CI on another machine drew a small-LM NLL 1.6x the worst of three seeds), so the
draws also cover every CPU kind this machine can emulate: each draw trains in a child
process whose torch, MKL and oneDNN are capped at that kind's instructions
(``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``), the same
kernels a CPU of that kind picks. The committed weights count as one draw.

A draw of the committed seed on another kind also records a fingerprint of its weights:
a CPU of that kind whose MKL picks the same kernels as the emulation retrains those very
weights, and the retraining test then checks them bit for bit; elsewhere it checks the band.

The bound: held-out NLL of the reference solutions (LMs, lower is better) spreads
multiplicatively, so it is ``NLL_FACTOR`` times the worst draw; held-out AUC (PRM, higher
is better) is the worst draw minus ``AUC_MARGIN``, never below chance plus that margin.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from gsi.toy.fit import machine

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
AUC_MARGIN = 0.04  # below the worst draw; never below chance + this margin
NLL_FACTOR = 2.0  # bound = factor * worst draw
KINDS = ("DEFAULT", "AVX2", "AVX512")  # torch's CPU capability names, fewest instructions first
_CAPS = {  # kind -> (torch ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA)
    "DEFAULT": ("default", "SSE4_2", "SSE41"),
    "AVX2": ("avx2", "AVX2", "AVX2"),
    "AVX512": ("avx512", "AVX512", "AVX512_CORE"),
}


def kind_env(kind: str) -> dict[str, str]:
    """Environment that makes a fresh process compute like a CPU of ``kind``."""
    if kind not in _CAPS:
        raise ValueError(f"unknown CPU kind {kind!r}; choose from {', '.join(KINDS)}")
    aten, mkl, onednn = _CAPS[kind]
    return {"ATEN_CPU_CAPABILITY": aten, "MKL_ENABLE_INSTRUCTIONS": mkl, "ONEDNN_MAX_CPU_ISA": onednn}


def kinds_here() -> list[str]:
    """The CPU kinds this machine can compute as: its own and every one below it."""
    own = machine()["cpu_capability"]
    return list(KINDS[: KINDS.index(own) + 1]) if own in KINDS else [own]


def quality(which: str, path: Path) -> float:
    """Held-out AUC (PRM) or held-out NLL (LMs) of the model in ``path``."""
    from gsi.toy.evaluate import heldout_auc, heldout_nll

    if which == "prm":
        from gsi.rewards.prm import HFQwenPRM

        from gsi.toy.train_prm import PRMSpec

        return heldout_auc(HFQwenPRM(str(path), name="toy_prm", num_threads=1), world=PRMSpec().world)["auc"]
    return round(heldout_nll(path), 5)


def fingerprint(path: Path) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the tensors in ``path``'s
    model.safetensors (the file's own metadata left out)."""
    import hashlib

    import torch
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(Path(path) / "model.safetensors").items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def reference_fingerprint(band: dict, seed: int, kind: str) -> str | None:
    """The fingerprint recorded for a retraining of ``seed`` computing as ``kind``."""
    for d in band.get("draws", []):
        if d["seed"] == seed and d["kind"] == kind and d.get("fingerprint"):
            return d["fingerprint"]
    return None


def previous_draws(band: dict | None) -> list[dict]:
    """The draws an earlier band recorded (also the older ``seeds`` form, all on the kind
    it was measured on)."""
    if not band:
        return []
    if "draws" in band:
        return [dict(d) for d in band["draws"]]
    kind = band.get("measured_on", {}).get("cpu_capability", "unknown")
    return [{"seed": int(s), "kind": kind, "value": v} for s, v in band.get("seeds", {}).items()]


def passes(which: str, value: float, band: dict) -> bool:
    """Whether a retrained model's quality ``value`` lies inside ``band``."""
    return value >= band["bound"] if which == "prm" else value <= band["bound"]


def verdict(which: str, fresh: Path, assets: Path = ASSETS) -> tuple[bool, str]:
    """Whether ``fresh``, a retraining of the committed ``which`` with its recorded seed on
    this machine, is what it should be, and why: bit for bit the committed weights on the
    CPU kind and torch version they were trained on (``trained_on``); bit for bit the
    emulated draw of this CPU kind where one is recorded and matches; else inside the band."""
    meta = json.loads((assets / which / "train_meta.json").read_text())
    here, ours = machine(), fingerprint(fresh)
    if meta.get("trained_on") == here:
        theirs = fingerprint(assets / which)
        return ours == theirs, (f"retrained {which} on {here}, the machine it was trained on: weights "
                                f"{'equal' if ours == theirs else 'differ: ' + ours + ' vs committed ' + theirs}")
    band = meta["retrain_band"]
    reference = reference_fingerprint(band, int(meta.get("seed", 0)), here["cpu_capability"])
    if reference == ours:
        return True, f"retrained {which} on {here}: bit for bit the recorded {here['cpu_capability']} draw"
    value = quality(which, fresh)
    why = "no draw of this kind recorded" if reference is None else "this CPU rounds unlike its kind's emulation"
    return passes(which, value, band), (f"retrained {which} on {here} ({why}): {band['metric']} {value}, "
                                        f"bound {band['bound']} ({band.get('rule', '')}), draws "
                                        + ", ".join(f"{d['seed']}@{d['kind']} {d['value']}" for d in previous_draws(band)))


def bound_of(which: str, values: list[float]) -> float:
    if which == "prm":
        return round(max(0.5 + AUC_MARGIN, min(values) - AUC_MARGIN), 4)
    return round(NLL_FACTOR * max(values), 5)


def band_of(which: str, draws: list[dict]) -> dict:
    """The band over ``draws``: records ``{"seed", "kind", "value"}`` (and ``fingerprint``)."""
    values = [d["value"] for d in draws]
    if which == "prm":
        metric, rule = "heldout_auc (at least bound)", f"max(0.5 + {AUC_MARGIN}, worst - {AUC_MARGIN})"
    else:
        metric, rule = "heldout_nll (at most bound)", f"{NLL_FACTOR} x worst"
    ordered = sorted(draws, key=lambda d: (d["seed"], d["kind"]))
    return {"metric": metric, "draws": ordered, "bound": bound_of(which, values), "rule": rule,
            "measured_on": machine()}


def train_seed(which: str, seed: int, work: Path) -> Path:
    """Train ``which`` with ``seed`` under ``work/seed<seed>`` unless it is there already
    (from this CPU kind: a draw of another kind is retrained)."""
    out = work / f"seed{seed}"
    meta = out / which / "train_meta.json"
    if not (meta.exists() and json.loads(meta.read_text())["seed"] == seed
            and json.loads(meta.read_text()).get("trained_on") == machine()):
        if which == "prm":
            from gsi.toy.train_prm import train

            train(out, seed=seed, evaluate=False)
        else:
            from gsi.toy.train import train

            train(which, out, seed=seed)
    return out / which


def draw(which: str, seed: int, kind: str, work: Path) -> dict:
    """Train ``which`` with ``seed`` in a child process computing as CPU ``kind``; the draw
    ``{"seed", "kind", "value", "fingerprint"}``."""
    env = {**os.environ, **kind_env(kind)}
    cmd = [sys.executable, "-m", "gsi.toy.quality_band", "--draw", f"{which}:{seed}",
           "--work", str(work / kind.lower())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {which} draw (seed {seed}, {kind}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["kind"] != kind:
        raise RuntimeError(f"the {which} draw asked for CPU kind {kind} but torch computed as {result['kind']}")
    return {"seed": seed, "kind": kind, "value": result["value"], "fingerprint": result["fingerprint"]}


def measure(which: str, seeds: list[int], work: Path, kinds: list[str] | None = None,
            assets: Path = ASSETS, jobs: int = 1, keep: bool = False) -> dict:
    """Measure the band over the committed weights (their own seed and CPU kind) and every
    (seed, kind) of the committed seed and ``seeds`` × ``kinds`` (default: all kinds this
    machine can emulate), one draw per child process, ``jobs`` at once; with ``keep``, the
    draws the current band records are kept and not retrained. Record the band."""
    from concurrent.futures import ThreadPoolExecutor

    meta_path = assets / which / "train_meta.json"
    meta = json.loads(meta_path.read_text())
    committed = int(meta.get("seed", 0))
    own = meta.get("trained_on", {}).get("cpu_capability", machine()["cpu_capability"])
    if committed in seeds:
        raise ValueError(f"seed {committed} is the committed {which}'s own seed; give other seeds")
    kinds = kinds_here() if kinds is None else kinds
    draws = {(committed, own): {"seed": committed, "kind": own, "value": quality(which, assets / which),
                                "fingerprint": fingerprint(assets / which)}}
    if keep:
        for d in previous_draws(meta.get("retrain_band")):
            draws.setdefault((d["seed"], d["kind"]), d)
    todo = sorted({(s, k) for s in [committed, *seeds] for k in kinds} - set(draws))
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for d in pool.map(lambda sk: draw(which, *sk, work), todo):
            log.info("%s seed %d on %s: %s", which, d["seed"], d["kind"], d["value"])
            draws[(d["seed"], d["kind"])] = d
    draws = list(draws.values())
    band = band_of(which, draws)
    meta = json.loads(meta_path.read_text())
    meta["retrain_band"] = band
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log.info("%s band: %s", which, band)
    return band


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="prm,small,big", help="comma list of prm,small,big")
    parser.add_argument("--seeds", default="1,2", help="seeds besides the committed weights' own")
    parser.add_argument("--kinds", default=None,
                        help=f"comma list of CPU kinds to draw on ({', '.join(KINDS)}); default: all this machine can emulate")
    parser.add_argument("--jobs", type=int, default=1, help="draws trained at once (one core each)")
    parser.add_argument("--keep", action="store_true", help="keep the draws the current bands record")
    parser.add_argument("--work", type=Path, required=True, help="where the draws are trained")
    parser.add_argument("--draw", default=None, help=argparse.SUPPRESS)  # WHICH:SEED, in a child process
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.draw is not None:
        which, seed = args.draw.split(":")
        value = quality(which, train_seed(which, int(seed), args.work))  # also trains
        path = args.work / f"seed{seed}" / which
        print(json.dumps({"value": value, "kind": machine()["cpu_capability"], "fingerprint": fingerprint(path)}),
              flush=True)
        return
    seeds = [int(s) for s in args.seeds.split(",") if s]
    here = kinds_here()
    kinds = here if args.kinds is None else args.kinds.split(",")
    for kind in kinds:
        if kind not in here:
            parser.error(f"--kinds: this machine cannot compute as {kind!r}; it can as {', '.join(here)}")
    for which in args.which.split(","):
        if which not in ("prm", "small", "big"):
            parser.error(f"--which: unknown model {which!r}; choose from prm, small, big")
        measure(which, seeds, args.work, kinds, jobs=args.jobs, keep=args.keep)


if __name__ == "__main__":
    main()
