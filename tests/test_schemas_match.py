"""Every `_target_` class takes exactly its schema's fields, with the schema's defaults.

Hydra instantiates a class from its schema's fields; a parameter the schema lacks can never
be set from the command line, a field the class lacks fails at start-up, and two different
defaults mean the library and a run disagree about the same setting.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
import yaml

import gsi.config as schemas

ROOT = Path(__file__).resolve().parents[1]


def _schema_targets() -> list[tuple[str, type]]:
    out = []
    for name, obj in vars(schemas).items():
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            target = {f.name: f for f in dataclasses.fields(obj)}.get("_target_")
            if target is not None and isinstance(target.default, str) and target.default not in ("???", ""):
                out.append((name, obj))
    return sorted(out, key=lambda x: x[0])


def _load(path: str) -> type:
    module, cls = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return inspect.Parameter.empty


def _same_default(param_default, field_default) -> bool:
    """Equal, or both "required", or the constructor's None standing for the schema's empty
    container / default-built record (a constructor cannot take a mutable default)."""
    if field_default == "???":  # omegaconf MISSING: the class must require it too
        field_default = inspect.Parameter.empty
    if param_default == field_default:
        return True
    if isinstance(param_default, (list, tuple)) and isinstance(field_default, (list, tuple)):
        return list(param_default) == list(field_default)
    if param_default is None:
        if field_default in ({}, [], ()):
            return True
        if dataclasses.is_dataclass(field_default) and field_default == type(field_default)():
            return True
    return False


SCHEMAS = _schema_targets()


def _conf_pairs() -> list[tuple[str, type, str]]:
    """(conf file, its schema, its `_target_`) for each conf/ file that names a class."""
    schemas.register()
    from hydra.core.config_store import ConfigStore

    by_name = {}
    for group in ("model", "reward", "dataset", "method", "tracking"):
        for entry in ConfigStore.instance().list(group):
            node = ConfigStore.instance().load(f"{group}/{entry}")
            if node.node is not None and hasattr(node.node, "_metadata"):
                by_name[(group, entry.removesuffix(".yaml"))] = node.node._metadata.object_type
    out = []
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        node = yaml.safe_load(path.read_text()) or {}
        if not (isinstance(node, dict) and isinstance(node.get("_target_"), str)):
            continue
        group = path.parent.name
        names = [d for d in node.get("defaults", []) if isinstance(d, str) and d.endswith("schema")]
        assert names, f"{path.relative_to(ROOT)} names a _target_ but composes no schema"
        out.append((str(path.relative_to(ROOT)), by_name[(group, names[0])], node["_target_"]))
    return out


CONF_PAIRS = _conf_pairs()


@pytest.mark.parametrize("path,schema,target", CONF_PAIRS, ids=[p for p, _, _ in CONF_PAIRS])
def test_every_conf_target_takes_its_schemas_fields(path, schema, target):
    """A conf file's class accepts its schema's fields: the schema's own target is checked
    in full below; another class on the same schema (``tracking=none``'s NullTracker) must
    take every field, or ignore them all with ``**kwargs`` and no parameters of its own."""
    cls = _load(target)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    fields = {f.name for f in dataclasses.fields(schema)} - {"_target_"}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    assert named == fields or (takes_any and not named), (
        f"{path}: {target} takes {sorted(named)}{' and **kwargs' if takes_any else ''}, "
        f"its schema {schema.__name__} has {sorted(fields)}"
    )


@pytest.mark.parametrize("name,schema", SCHEMAS, ids=[n for n, _ in SCHEMAS])
def test_constructor_parameters_equal_schema_fields_and_defaults(name, schema):
    fields = {f.name: f for f in dataclasses.fields(schema) if f.name != "_target_"}
    target = _load(_field_default({f.name: f for f in dataclasses.fields(schema)}["_target_"]))
    params = {
        p.name: p
        for p in list(inspect.signature(target.__init__).parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    assert set(params) == set(fields), (
        f"{name} -> {target.__name__}: only in the class {sorted(set(params) - set(fields))}, "
        f"only in the schema {sorted(set(fields) - set(params))}"
    )
    wrong = {
        n: (params[n].default, _field_default(fields[n]))
        for n in fields
        if not _same_default(params[n].default, _field_default(fields[n]))
    }
    assert not wrong, f"{name} -> {target.__name__}: defaults differ (class, schema): {wrong}"
