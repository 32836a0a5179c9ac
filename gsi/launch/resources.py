"""Resources a job needs, derived from the config where the config says it."""

from __future__ import annotations

import re

from omegaconf import DictConfig


def gpus_per_task(cfg: DictConfig) -> int | None:
    """GPUs one job needs from the model layout: the highest GPU index named by
    ``model.small``, ``model.big`` or ``reward`` — a ``device`` key ``cuda:<k>`` (``cuda`` = 0)
    or a vLLM engine's ``visible_devices`` ("2", "0,1") — plus one. ``None`` (ask SLURM for
    no GPU) when nothing names a GPU explicitly, e.g. ``auto``/``cpu``; then set
    ``hydra.launcher.gpus_per_node`` yourself."""
    devices = []
    indices = []
    model = cfg.get("model") or {}
    for node in (model.get("small"), model.get("big"), cfg.get("reward")):
        if node is None:
            continue
        if "device" in node and node.device is not None:
            devices.append(str(node.device))
        if node.get("visible_devices") is not None:
            indices += [int(k) for k in str(node.visible_devices).split(",") if k.strip().isdigit()]
    for d in devices:
        m = re.fullmatch(r"cuda(?::(\d+))?", d.strip())
        if m:
            indices.append(int(m.group(1) or 0))
    return max(indices) + 1 if indices else None
