"""Merge the shards of one configuration into one run: ``results.jsonl`` + ``metrics.json``.

    python -m analysis.merge outputs/runs/gsi_toy_arith_b20_shard*of4-*     # shard run dirs
    python -m analysis.merge outputs/runs                                   # every sharded config in it

Shards belong together when their resolved configs are equal except ``shard.index`` (and
the keys that do not change results: ``gsi.launch.identity.NON_RESULT_KEYS``). The merge
refuses, with one line, shards of different configs, a missing or unfinished shard, a
problem in two shards or in the wrong shard, and a problem of the data set that no shard
has. The merged run goes to the directory the unsharded configuration would use
(``<name>-<hash>`` with ``shard.count=1``) unless ``-o`` says otherwise; its quality metrics
are recomputed from the merged rows, its timing metrics add up the shards'.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from analysis.collect import flatten
from gsi.launch.identity import config_hash, run_id
from gsi.outputs import atomic_write_json, atomic_write_text, finished_metrics, read_results



class MergeError(ValueError):
    """Shards that cannot be merged; the message is one line."""


@dataclass
class Shard:
    path: Path
    cfg: DictConfig
    index: int
    count: int
    key: str  # identity of the config without shard.index


def load_shard(path: Path) -> Shard:
    path = Path(path)
    if not (path / "config.yaml").exists():
        raise MergeError(f"{path}: no config.yaml, not a run directory")
    cfg = OmegaConf.load(path / "config.yaml")
    index, count = int(cfg.shard.index), int(cfg.shard.count)
    unsharded = OmegaConf.merge(cfg, {"shard": {"index": 0}})
    return Shard(path, cfg, index, count, config_hash(unsharded))


def find_shards(paths: list[Path]) -> list[Shard]:
    """Run directories given directly, or every run directory directly inside a sweep dir."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.yaml").exists():
            dirs.append(p)
        elif p.is_dir():
            dirs.extend(sorted(d for d in p.iterdir() if (d / "config.yaml").exists()))
        else:
            raise MergeError(f"{p}: not a run directory nor a folder of run directories")
    return [load_shard(d) for d in dirs]


def _differing_key(a: DictConfig, b: DictConfig) -> str:
    from gsi.launch.identity import result_config

    flat_a = flatten(result_config(a))
    flat_b = flatten(result_config(b))
    for key in sorted(set(flat_a) | set(flat_b)):
        if key != "shard.index" and flat_a.get(key) != flat_b.get(key):
            return f"{key} ({flat_a.get(key)!r} vs {flat_b.get(key)!r})"
    return "?"


def check_group(shards: list[Shard]) -> None:
    """Raise MergeError unless ``shards`` are of one configuration."""
    first = shards[0]
    for s in shards[1:]:
        if s.key != first.key:
            raise MergeError(f"{first.path.name} and {s.path.name} are different configurations: "
                             f"{_differing_key(first.cfg, s.cfg)}")


def merge_rows(parts: list[tuple[str, int, list[dict]]], count: int, strict: bool) -> tuple[list[dict], list[int]]:
    """The one shard merge: rows of shards ``(name, index, rows)`` of a ``count``-way partition
    united by problem id, and the shard indices missing. ``strict`` (``analysis.merge``)
    raises MergeError for a missing or repeated shard, a problem in two shards and a problem
    in the wrong shard; tolerant (``analysis.collect``, for the report) keeps a problem's
    first row and lists the missing shards."""
    from gsi.data import shard_of

    indices = sorted(index for _, index, _ in parts)
    missing = sorted(set(range(count)) - set(indices))
    if strict and indices != list(range(count)):
        dup = sorted({i for i in indices if indices.count(i) > 1})
        what = f"shard(s) {dup} given twice" if dup else f"missing shard(s) {missing}"
        raise MergeError(f"{parts[0][0]}: shard.count={count} but {what}")
    rows: dict[str, dict] = {}
    for name, index, shard_rows in sorted(parts, key=lambda p: (p[1], p[0])):
        for row in shard_rows:
            pid = row["problem_id"]
            if strict and pid in rows:
                raise MergeError(f"problem {pid} appears twice (in {name} and another shard or line)")
            if strict and shard_of(pid, count) != index:
                raise MergeError(f"{name}: problem {pid} belongs to shard {shard_of(pid, count)}, "
                                 f"not {index}: these are not shards of one partition")
            rows.setdefault(pid, row)
    return list(rows.values()), missing


def merge_group(shards: list[Shard], out: Path | None = None) -> tuple[Path, dict]:
    """Check, merge and write one configuration's shards; return (output dir, metrics)."""
    from hydra.utils import instantiate

    from gsi.data import select
    from gsi.metrics import combine_metrics

    check_group(shards)
    shards = sorted(shards, key=lambda s: s.index)
    count = shards[0].count
    merge_rows([(s.path.name, s.index, []) for s in shards], count, strict=True)  # shard set first
    metrics_in = []
    for s in shards:
        m = finished_metrics(s.path)
        if m is None:
            raise MergeError(f"{s.path}: shard {s.index} has not finished (no metrics.json); relaunch it first")
        metrics_in.append(m)
    try:
        parts = [(s.path.name, s.index, list(read_results(s.path / "results.jsonl"))) for s in shards]
    except (OSError, ValueError) as exc:
        raise MergeError(str(exc)) from None
    united, _ = merge_rows(parts, count, strict=True)
    rows = {row["problem_id"]: row for row in united}

    cfg = OmegaConf.merge(shards[0].cfg, {"shard": {"index": 0, "count": 1}})
    dataset = instantiate(cfg.dataset)
    expected = [p.id for p in select(dataset.load(), cfg.limit, 0, 1)]
    missing = [pid for pid in expected if pid not in rows]
    extra = sorted(set(rows) - set(expected))
    if missing or extra:
        what = f"{len(missing)} problem(s) missing, e.g. {missing[0]}" if missing else \
            f"{len(extra)} problem(s) not in the data set, e.g. {extra[0]}"
        raise MergeError(f"{shards[0].path.name}: {what}")

    ordered = [rows[pid] for pid in expected]
    metrics = combine_metrics(ordered, metrics_in)
    metrics["merged_shards"] = [str(s.path) for s in shards]

    out = Path(out) if out is not None else shards[0].path.parent / run_id(cfg)
    if (out / "results.jsonl").exists() and finished_metrics(out) is not None \
            and not (out / "merged_from.json").exists():
        raise MergeError(f"{out} already holds a run that is not a merge; pick another place with -o")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered))
    atomic_write_json(out / "merged_from.json", metrics["merged_shards"])
    atomic_write_json(out / "metrics.json", metrics)
    return out, metrics


def plan(paths: list[Path]) -> list[list[Shard]]:
    """Shard dirs given directly form one group; sweep dirs give one group per sharded config."""
    shards = find_shards(paths)
    if not shards:
        raise MergeError(f"no run directories in {' '.join(map(str, paths))}")
    if all((Path(p) / "config.yaml").exists() for p in paths):
        return [shards]
    groups: dict[str, list[Shard]] = {}
    for s in shards:
        if s.count > 1:
            groups.setdefault(s.key, []).append(s)
    if not groups:
        raise MergeError(f"no sharded runs (shard.count > 1) in {' '.join(map(str, paths))}")
    return list(groups.values())


def merge(paths: list[Path], out: Path | None = None) -> list[tuple[Path, dict]]:
    """Merge the given shard dirs (one configuration), or every sharded config in sweep dirs."""
    groups = plan(paths)
    if out is not None and len(groups) > 1:
        raise MergeError(f"-o names one output but there are {len(groups)} sharded configurations")
    return [merge_group(g, out) for g in groups]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.merge", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="shard run dirs of one config, or sweep dirs")
    parser.add_argument("-o", "--out", type=Path, default=None, help="output run dir (default: the unsharded id)")
    args = parser.parse_args(argv)
    try:
        groups = plan(args.paths)
        if args.out is not None and len(groups) > 1:
            raise MergeError(f"-o names one output but there are {len(groups)} sharded configurations")
    except MergeError as exc:
        print(f"analysis.merge: refusing: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for group in groups:  # in a sweep dir, one bad configuration does not stop the others
        try:
            out, metrics = merge_group(group, args.out)
        except MergeError as exc:
            print(f"analysis.merge: refusing: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"merged {len(group)} shards, {metrics['num_problems']} problems, "
              f"accuracy {metrics['accuracy']:.4f} -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
