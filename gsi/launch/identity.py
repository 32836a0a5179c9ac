"""A run's identity: a readable name plus a short hash of the resolved config.

Only the keys that can change results enter the hash; how and where a run is launched
(``hydra``, incl. the launcher), how it is tracked (``tracking``) and whether a progress bar
is drawn (``progress``) do not. So the same configuration always maps to the same output
directory (``outputs/runs/<name>-<hash>``), different configurations never share one, and
launching a sweep again finds the runs that already finished or started.

``${gsi.run_id:}`` in ``conf/config.yaml`` (``hydra.run.dir``, ``hydra.sweep.subdir``)
calls :func:`run_id` on the config being run.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

NON_RESULT_KEYS = frozenset({"hydra", "launcher", "tracking", "progress"})
HASH_CHARS = 10


def result_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without :data:`NON_RESULT_KEYS` (a missing ``???`` value raises)."""
    out: dict[str, Any] = {}
    for key in cfg:
        if key in NON_RESULT_KEYS:
            continue
        value = cfg[key]
        out[str(key)] = OmegaConf.to_container(value, resolve=True, throw_on_missing=True) \
            if OmegaConf.is_config(value) else value
    return out


def _canonical(obj: Any) -> Any:
    """JSON-stable form: 20 and 20.0 hash alike, inf/nan get a name."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        f = float(obj)
        if not math.isfinite(f):
            return repr(f)
        return int(f) if f.is_integer() else f
    return str(obj)


def config_hash(cfg: DictConfig, chars: int = HASH_CHARS) -> str:
    text = json.dumps(_canonical(result_config(cfg)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def _num(value: Any) -> str:
    f = float(value)
    return str(int(f)) if f.is_integer() else f"{f:g}"


def run_name(cfg: DictConfig) -> str:
    """``gsi_toy_arith_b20`` (+ ``_shard2of8``): enough to recognise a run in a listing."""
    parts = [str(cfg.method.name), str(cfg.dataset.get("name", "data")), f"b{_num(cfg.beta)}"]
    if int(cfg.shard.count) > 1:
        parts.append(f"shard{int(cfg.shard.index)}of{int(cfg.shard.count)}")
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", "_".join(parts))


def run_id(cfg: DictConfig) -> str:
    return f"{run_name(cfg)}-{config_hash(cfg)}"
