"""Command-line checks made before Hydra composes anything.

Hydra answers an unknown group option (``method=gsii``) with a multi-line report; a user
sweeping dozens of jobs wants one line that names the key, the value and the choices,
and an exit code that says "configuration error" (2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("model", "reward", "dataset", "method", "tracking", "experiment", "paper_method", "hydra/launcher")


def group_options(group: str, conf: Path = CONF) -> list[str]:
    """The options of a config group: its YAML files (schemas live in the ConfigStore)."""
    return sorted(p.stem for p in (conf / group).glob("*.yaml"))


def _split_choices(value: str) -> list[str]:
    """``gsi,rsd`` (a sweep) or ``choice(gsi,rsd)`` -> the option names."""
    value = value.strip()
    for fn in ("choice(", "glob("):
        if value.startswith(fn) and value.endswith(")"):
            if fn == "glob(":
                return []  # patterns are Hydra's business
            value = value[len(fn):-1]
    return [v.strip().strip("'\"") for v in value.split(",") if v.strip()]


def _top_level_keys() -> dict[str, str]:
    """Top-level setting -> its annotated type, as written (e.g. ``"float"``)."""
    from dataclasses import fields

    from gsi.config import Config

    return {f.name: str(f.type) for f in fields(Config)}


_PARSERS = {"float": float, "int": int, "Optional[int]": int, "bool": None}


def _bad_value(key: str, kind: str, value: str) -> str | None:
    """One line if a value of a numeric setting does not parse, else None."""
    parse = _PARSERS.get(kind)
    if parse is None or value.startswith(("${", "range(", "interval(")):
        return None
    for item in _split_choices(value):
        if kind.startswith("Optional") and item.lower() in ("null", "none"):
            continue
        try:
            parse(item)
        except ValueError:
            want = "a number" if parse is float else "an integer"
            return f"{key}={item} is not allowed: {key} must be {want}"
    return None


def unknown_group_option(argv: Sequence[str], conf: Path = CONF) -> str | None:
    """The one-line error for the first override naming a group option or a top-level
    setting that does not exist, or None. Keys with a dot (``model.small.path=...``) are
    left to the schemas."""
    import difflib

    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        plain = key.lstrip("+~")
        if key == plain and "." not in key and "/" not in key and key not in GROUPS:
            known = _top_level_keys()
            if key not in known:
                close = difflib.get_close_matches(key, list(known) + list(GROUPS), n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                return f"{key}={value} is not a setting: {hint}(settings: {', '.join(known)})"
            problem = _bad_value(key, known[key], value)
            if problem is not None:
                return problem
        key = plain
        if key not in GROUPS:
            continue
        options = group_options(key, conf)
        if not options:
            continue
        for choice in _split_choices(value):
            if choice not in options:
                return f"{key}={choice!r} is not an option: choose one of {', '.join(options)} (conf/{key}/)"
    return None


def check_command_line(argv: Sequence[str]) -> None:
    """End the process with one line on stderr and exit code 2 when the command line names
    an unknown group option or setting, or composes into a configuration that cannot work
    (:func:`gsi.cli.precheck.command_line_problem`); return when it is fine."""
    import sys

    from gsi.cli.precheck import command_line_problem

    problem = unknown_group_option(argv)
    if problem is not None:
        nested = command_line_problem(argv) if "is not a setting" in problem and "did you mean" not in problem else None
        problem = nested if nested and "did you mean" in nested else f"config error: {problem}"
    else:
        problem = command_line_problem(argv)
    if problem is not None:
        print(f"gsi: {problem}", file=sys.stderr)
        raise SystemExit(2)
