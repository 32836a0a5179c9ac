"""A run's identity: a readable name plus a short hash of the resolved config.

Only the keys that can change results enter the hash; how and where a run is launched
(``hydra``, incl. the launcher), how it is tracked (``tracking``) and whether a progress bar
is drawn (``progress``) do not. So the same configuration always maps to the same output
directory (``outputs/runs/<name>-<hash>``), different configurations never share one, and
launching a sweep again finds the runs that already finished or started. Paths inside the
installed ``gsi`` package (the embedded toy models) enter the hash relative to the package
(``gsi:toy/assets/small``), so a clone elsewhere, or a moved checkout, maps a configuration
to the same directory name.

``${gsi.run_id:}`` in ``conf/config.yaml`` (``hydra.run.dir``, ``hydra.sweep.subdir``)
calls :func:`run_id` on the config being run.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# retry_errors is how a run resumes, not what it computes: both settings share a directory
NON_RESULT_KEYS = frozenset({"hydra", "launcher", "tracking", "progress", "retry_errors"})
HASH_CHARS = 10
PACKAGE = Path(__file__).resolve().parents[1]


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
    if isinstance(obj, str):
        return portable(obj)
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, (int, float)):
        f = float(obj)
        if not math.isfinite(f):
            return repr(f)
        return int(f) if f.is_integer() else f
    return str(obj)


def portable(text: str) -> str:
    """An absolute path inside the ``gsi`` package as ``gsi:<relative path>``; other text as is."""
    if not text.startswith("/") or PACKAGE.as_posix() not in text:
        return text
    try:
        return "gsi:" + Path(text).resolve().relative_to(PACKAGE).as_posix()
    except ValueError:
        return text


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What a configuration computes, flattened (``{"model.small.path": "gsi:toy/assets/small", ...}``)
    in the canonical form its hash is taken of: the record a run directory is checked against."""
    return _flatten(_canonical(result_config(cfg)))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix[:-1]: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out


def identity_diff(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``["beta (20 here, 0.5 recorded)", ...]``: the keys whose values differ."""
    missing = object()
    out = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key, missing), current.get(key, missing)
        if old != new:
            show = lambda v: "unset" if v is missing else json.dumps(v)  # noqa: E731
            out.append(f"{key} ({show(new)} here, {show(old)} recorded)")
    return out


def config_hash(cfg: DictConfig, chars: int = HASH_CHARS) -> str:
    text = json.dumps(_canonical(result_config(cfg)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def _num(value: Any) -> str:
    f = float(value)
    return str(int(f)) if f.is_integer() else f"{f:g}"


def dir_stem(cfg: DictConfig) -> str:
    """``gsi_toy_arith_b20`` (+ ``_shard2of8``): the readable part of a run directory's name,
    enough to recognise a run in a listing (the tracker's display name is
    :func:`gsi.tracking.run_name`)."""
    parts = [str(cfg.method.name), str(cfg.dataset.get("name", "data")), f"b{_num(cfg.beta)}"]
    if int(cfg.shard.count) > 1:
        parts.append(f"shard{int(cfg.shard.index)}of{int(cfg.shard.count)}")
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", "_".join(parts))


def run_id(cfg: DictConfig) -> str:
    return f"{dir_stem(cfg)}-{config_hash(cfg)}"
