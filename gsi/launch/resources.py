"""Resources a job needs, derived from the config where the config says it."""

from __future__ import annotations

import re

from omegaconf import DictConfig


def gpus_per_task(cfg: DictConfig) -> int | None:
    """GPUs one job needs from the model layout: the highest ``cuda:<k>`` named by
    ``model.small``, ``model.big`` or ``reward`` ``device`` keys, plus one (``cuda`` = 0).
    ``None`` (ask SLURM for no GPU) when no device names CUDA explicitly, e.g. ``auto``/``cpu``;
    then set ``hydra.launcher.gpus_per_node`` yourself."""
    devices = []
    model = cfg.get("model") or {}
    for node in (model.get("small"), model.get("big"), cfg.get("reward")):
        if node is not None and "device" in node and node.device is not None:
            devices.append(str(node.device))
    indices = []
    for d in devices:
        m = re.fullmatch(r"cuda(?::(\d+))?", d.strip())
        if m:
            indices.append(int(m.group(1) or 0))
    return max(indices) + 1 if indices else None
