"""How a tracked run is named and grouped (a name a person reads; a sweep's group)."""

from __future__ import annotations

from omegaconf import DictConfig


def run_name(cfg: DictConfig, with_shard: bool = True) -> str:
    """A name a person reads: method, beta, threshold (methods that reject), shard."""
    from gsi.methods import METHODS

    method = cfg.method.name
    parts = [method, f"beta={float(cfg.beta):g}"]
    if method in METHODS and METHODS[method].rejects:
        parts.append(f"u={float(cfg.threshold):g}")
    if with_shard and int(cfg.shard.count) > 1:
        parts.append(f"shard={cfg.shard.index}/{cfg.shard.count}")
    return " ".join(parts)


def sweep_group(cfg: DictConfig) -> str | None:
    """The W&B group of a multirun job: ``sweep:`` and the keys the command line sets
    (``sweep:beta,method``), so relaunching a sweep — which resumes into the same run
    directories — also lands in the same group; ``tracking.group=NAME`` names it
    explicitly. The shards of one configuration run outside a sweep share its name."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            keys = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
            keys = {k for k in keys if not k.startswith(("hydra", "tracking"))}
            return "sweep:" + ",".join(sorted(keys))
    except Exception:  # noqa: BLE001 - no Hydra context is fine
        pass
