"""Compose the command line's configuration once before Hydra runs the job, so that a value
that cannot work ends the command with one line and exit code 2 before any model loads.

Hydra answers a misspelt nested key (``model.small.pathh=x``) or a value of the wrong type
(``reward.noise=abc``) with a multi-line report and exit code 1, and lets ``+n_smal=8`` or
``~beta`` through to a traceback later. :func:`command_line_problem` composes ``conf/``
with the overrides through Hydra's compose API, names the full key with the closest valid
key (difflib) or the expected type, and then runs :func:`gsi.config.validate` on the result.
A sweep (``-m``) or other Hydra flags are left to Hydra; each job still validates itself.
"""

from __future__ import annotations

import difflib
from dataclasses import fields
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from gsi.cli import CONF


_TYPES = {"Float": "a number", "Integer": "an integer", "int": "an integer", "float": "a number",
          "bool": "true or false", "Boolean": "true or false"}


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _keys(node: Any, prefix: str = "") -> list[str]:
    """Every full key of a composed config (the hydra node and nested dicts included)."""
    out = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            full = f"{prefix}{k}"
            out.append(full)
            try:
                child = node._get_node(k)
            except Exception:  # noqa: BLE001
                continue
            if isinstance(child, DictConfig):
                out.extend(_keys(child, full + "."))
    return out


def _suggest(key: str, base: DictConfig) -> str:
    """`` did you mean model.small.path?`` for the closest existing key, or ``""``."""
    known = _keys(base)
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1] and k != key]
    close = same_leaf[:2] or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        siblings = [k for k in known if k.rsplit(".", 1)[0] == parent] if parent else []
        close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.3)
    return f": did you mean {' or '.join(close)}?" if close else ""


def _type_word(message: str) -> str:
    for word, what in _TYPES.items():
        if word in message:
            return what
    return "of the schema's type"


def _override_value(argv: Sequence[str], key: str) -> str:
    for arg in argv:
        k, _, v = arg.partition("=")
        if k.lstrip("+~") == key:
            return v
    return ""


def _group_overrides(argv: Sequence[str]) -> list[str]:
    from gsi.cli import GROUPS

    return [a for a in argv if a.partition("=")[0].lstrip("+~") in GROUPS]


def _composition_problem(exc: Exception, argv: Sequence[str]) -> str:
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    cause = exc.__cause__ or exc
    key = getattr(cause, "full_key", None)
    first = (str(cause).splitlines() or [""])[0]
    if not key:
        return f"{' '.join(argv)} does not compose: {first}"
    value = _override_value(argv, key)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        return f"{key}={value} is not a setting{_suggest(key, _compose(_group_overrides(argv)))}"
    if isinstance(cause, ValidationError):
        shown = f"{key}={value}" if value else f"{key}= (empty)"
        return f"{shown} is not allowed: {key} must be {_type_word(first)}"
    return f"{key}={value} does not compose: {first}"


def _structure_problem(cfg: DictConfig, argv: Sequence[str], base: DictConfig) -> str | None:
    """What the schemas let through: ``+`` adding an unknown key, ``~`` deleting a needed one."""
    from gsi.config import Config

    for arg in argv:
        key, _, value = arg.partition("=")
        if key.startswith("+") and not key.startswith("++"):
            plain = key.lstrip("+")
            if OmegaConf.select(base, plain, default=None) is None and "." not in plain:
                from gsi.cli import GROUPS

                if plain not in GROUPS and plain not in {f.name for f in fields(Config)}:
                    return f"+{plain}={value} adds an unknown setting{_suggest(plain, base)}"
    for f in fields(Config):
        if f.name not in cfg and f.name != "tracking":
            return f"~{f.name} deletes a required setting: set it instead ({f.name}=...)"
    run_dir = cfg.hydra.run._get_node("dir")._value()
    if not str(run_dir).strip():
        return "hydra.run.dir= (empty) is not allowed: hydra.run.dir must name a directory (or leave it out)"
    return None


def command_line_problem(argv: Sequence[str]) -> str | None:
    """One line (without the ``gsi:`` prefix) for the first problem of a single run's
    command line, or None when it composes and validates (or is a sweep / uses flags)."""
    from hydra.errors import HydraException

    from gsi.config import validate
    from gsi.errors import ConfigError

    if any(a.startswith("-") for a in argv):
        return None
    overrides = list(argv)
    try:
        cfg = _compose(overrides)
    except HydraException as exc:
        return "config error: " + _composition_problem(exc, argv)
    problem = _structure_problem(cfg, argv, _compose(_group_overrides(argv)))
    if problem is not None:
        return "config error: " + problem
    if str(cfg.hydra.get("mode")) in ("MULTIRUN", "RunMode.MULTIRUN"):
        return None  # a sweep set by the config (+experiment=sweep_paper): the launcher checks every job
    try:
        validate(cfg)
    except ConfigError as exc:
        return f"config error: {exc}"
    return None
