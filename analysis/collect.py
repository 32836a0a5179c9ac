"""Find run directories under sweep or run paths and group them into configurations.

A run directory holds ``config.yaml`` (the resolved config the pipeline writes first),
``results.jsonl`` and, once it finished, ``metrics.json``. A Hydra job directory
(``.hydra/``) without them is a job that failed before or while running. Runs whose
configs differ only in ``shard.index`` are shards of one configuration and are merged.
"The same configuration" is the launcher's: :func:`gsi.launch.identity.config_hash` (so
``beta: 20`` and ``beta: 20.0`` are one), and the merge is :func:`analysis.merge.merge_rows`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

log = logging.getLogger(__name__)

SKIP_DIRS = {".hydra", "wandb", "report", ".git", "__pycache__"}
# Keys that do not change what a configuration computes.
NOT_IDENTITY = ("shard.index", "progress")
NOT_IDENTITY_PREFIXES = ("tracking.",)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


@dataclass
class RunDir:
    """One job's directory and what it left behind."""

    path: Path
    config: dict[str, Any]  # flattened
    metrics: dict[str, Any] | None
    rows: list[dict[str, Any]]
    status: str  # complete | incomplete | failed
    reason: str = ""
    identity: str = ""  # the launcher's hash of the config with shard.index=0


def _identity(path: Path) -> str:
    from omegaconf import OmegaConf

    from gsi.launch.identity import config_hash

    cfg = OmegaConf.load(path / "config.yaml")
    return config_hash(OmegaConf.merge(cfg, {"shard": {"index": 0}}))


@dataclass
class Configuration:
    """Everything run with one config (all its shards): merged rows and metrics."""

    params: dict[str, Any]
    runs: list[RunDir]
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    missing_shards: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing_shards


def _is_run_dir(path: Path, files: Iterable[str], dirs: Iterable[str]) -> bool:
    files = set(files)
    return "config.yaml" in files or "results.jsonl" in files or ".hydra" in set(dirs)


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run directories under each path (the path itself included), sorted."""
    found: set[Path] = set()
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such directory")
        for here, dirs, files in os.walk(root):
            if _is_run_dir(Path(here), files, dirs):
                found.add(Path(here))
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
    return sorted(found)


def _load_config(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    if (path / "config.yaml").is_file():
        return flatten(OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=False))
    hydra_cfg = path / ".hydra" / "config.yaml"
    if hydra_cfg.is_file():  # unresolved, but enough to name the job
        return flatten(OmegaConf.to_container(OmegaConf.load(hydra_cfg), resolve=False))
    return {}


def load_run(path: Path) -> RunDir:
    """Read one run directory; never raises for a broken run (it is reported instead)."""
    from gsi.outputs import read_results

    path = Path(path)
    try:
        config = _load_config(path)
    except Exception as exc:  # noqa: BLE001 - report, do not stop
        return RunDir(path, {}, None, [], "failed", f"unreadable config: {exc}")
    rows: dict[str, dict] = {}
    try:
        for row in read_results(path / "results.jsonl"):
            rows.setdefault(row["problem_id"], row)
    except (OSError, ValueError, KeyError) as exc:
        return RunDir(path, config, None, [], "failed", f"unreadable results.jsonl: {exc}")
    metrics = None
    if (path / "metrics.json").is_file():
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except (OSError, ValueError) as exc:
            return RunDir(path, config, None, list(rows.values()), "failed", f"unreadable metrics.json: {exc}")
        if not isinstance(metrics, dict):
            return RunDir(path, config, None, list(rows.values()), "failed", "metrics.json is not a JSON object")
    if not (path / "config.yaml").is_file():
        return RunDir(
            path,
            config,
            None,
            list(rows.values()),
            "failed",
            "no config.yaml: the job stopped before the run started (see its log)",
        )
    if metrics is None:
        return RunDir(
            path,
            config,
            None,
            list(rows.values()),
            "incomplete",
            f"no metrics.json: killed or still running ({len(rows)} problems in results.jsonl)",
        )
    if metrics.get("num_problems") != len(rows):
        return RunDir(
            path,
            config,
            metrics,
            list(rows.values()),
            "incomplete",
            f"metrics.json counts {metrics.get('num_problems')} problems, results.jsonl has {len(rows)}",
        )
    try:
        key = _identity(path)
    except Exception as exc:  # noqa: BLE001 - report, do not stop
        return RunDir(path, config, metrics, list(rows.values()), "failed", f"config.yaml has no identity: {exc}")
    return RunDir(path, config, metrics, list(rows.values()), "complete", identity=key)


def merge_shards(runs: list[RunDir]) -> Configuration:
    """One configuration from its runs: rows united by problem id; a single run keeps
    its own ``metrics.json``; several shards get metrics recomputed from the union
    (timings summed: total compute, not elapsed time).

    The tolerant form of the one shard merge (``analysis.merge`` uses its strict form),
    so the report can list missing shards.
    """
    from analysis.merge import merge_rows
    from gsi.metrics import combine_metrics

    count = int(runs[0].config.get("shard.count", 1) or 1)
    parts = [(str(r.path), int(r.config.get("shard.index", 0) or 0), r.rows) for r in runs]
    united, missing = merge_rows(parts, count, strict=False)
    merged = sorted(united, key=lambda r: r["problem_id"])
    params = {k: v for k, v in runs[0].config.items() if k != "shard.index"}
    present = {index for _, index, _ in parts}
    if len(runs) == 1:
        metrics = dict(runs[0].metrics or {})
    else:
        metrics = combine_metrics(merged, [r.metrics or {} for r in runs])
    metrics["num_shards"] = len(present)
    return Configuration(params, list(runs), merged, metrics, missing)


def collect(paths: Iterable[Path]) -> tuple[list[Configuration], list[RunDir]]:
    """Configurations of the complete runs under ``paths``, and the runs that are not."""
    runs = [load_run(p) for p in find_run_dirs(paths)]
    bad = [r for r in runs if r.status != "complete"]
    groups: dict[str, list[RunDir]] = {}
    for run in runs:
        if run.status == "complete":
            groups.setdefault(run.identity, []).append(run)
    configs = [merge_shards(group) for group in groups.values()]
    for run in bad:
        log.warning("%s: %s (%s)", run.path, run.status, run.reason)
    return configs, bad
