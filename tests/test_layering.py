"""Imports follow the data flow (config -> pipeline -> data, backends, rewards, methods ->
loop -> results -> tracking/analysis): checked on the real import graph of gsi/ and analysis/,
read with ``ast``, so a new upward import fails here instead of in a reviewer's head."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gsi", "analysis")

# Who may import gsi.config: the layers above the pipeline, and the entry points that compose
# conf/ themselves (like run.py). Everything else gets ConfigError from gsi.errors and its
# records from gsi.types.
CONFIG_IMPORTERS = ("gsi.pipeline", "gsi.cli", "gsi.config", "gsi.launch")  # gsi.cli.precheck composes for run.py
# scripts that compose conf/ (or find the toy models) and run cases, as run.py does
ENTRY_POINTS = ("analysis.benchmark", "analysis.reference_effects", "analysis.hf_scaling")
# The output side of the loop never reaches back into it.
DOWNSTREAM_OF_LOOP = ("gsi.metrics", "gsi.tracking", "gsi.outputs")
LOOP_NAMES = {"Decoder"}  # what may be imported from gsi.decoding: the loop, not a record
# Private names the rewards may import from other packages: none (the shared torch/vLLM
# plumbing, gsi.engines, has public names).
KNOWN_PRIVATE: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str  # a module, as written (``gsi.config``) or resolved from a relative import
    names: tuple[str, ...]  # names taken with ``from target import ...``; () for ``import``
    lazy: bool  # inside a function: runs when called, not on import


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _edges(path: Path, root: Path = ROOT) -> list[Edge]:
    source = _module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    edges: list[Edge] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, lazy)
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                edges.extend(Edge(source, alias.name, (), inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = tuple(alias.name for alias in child.names)
                edges.append(Edge(source, base, names, inner))
                # ``from gsi import config`` imports the module gsi.config
                edges.extend(Edge(source, f"{base}.{n}", (), inner) for n in names if _is_module(f"{base}.{n}", root))
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return edges


def _is_module(name: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Edge]]:
    out: dict[str, list[Edge]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = _edges(path)
    assert "gsi.decoding" in out and "gsi.pipeline" in out  # the walk found the real code
    return out


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reaches(graph: dict[str, list[Edge]], start: str, target: str, lazy: bool) -> list[str] | None:
    """An import chain from ``start`` to ``target`` (lazy imports followed if ``lazy``), or None."""
    seen, stack = {start}, [[start]]
    while stack:
        chain = stack.pop()
        for edge in graph.get(chain[-1], []):
            if edge.lazy and not lazy:
                continue
            for mod in _parents(edge.target):
                if _under(mod, (target,)):
                    return chain + [mod]
                if mod in graph and mod not in seen:
                    seen.add(mod)
                    stack.append(chain + [mod])
    return None


def _parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def test_nothing_below_the_pipeline_imports_the_config(graph):
    allowed = CONFIG_IMPORTERS + ENTRY_POINTS
    direct = sorted(
        f"{e.source} imports {e.target}"
        for edges in graph.values() for e in edges
        if _under(e.target, ("gsi.config",)) and not _under(e.source, allowed)
    )
    assert direct == [], "use gsi.errors / gsi.types instead"
    for module in graph:
        if not _under(module, allowed):
            chain = _reaches(graph, module, "gsi.config", lazy=False)
            assert chain is None, " -> ".join(chain)


def test_the_output_side_never_imports_the_loop(graph):
    for module in graph:
        if _under(module, DOWNSTREAM_OF_LOOP):
            chain = _reaches(graph, module, "gsi.decoding", lazy=True)
            assert chain is None, " -> ".join(chain)


def test_nothing_imports_the_loop_for_a_record(graph):
    taken = sorted(
        f"{e.source}: {name}"
        for edges in graph.values() for e in edges if e.target == "gsi.decoding"
        for name in e.names if name not in LOOP_NAMES
    )
    assert taken == [], "records live in gsi.types"


def test_rewards_import_no_private_name_of_another_package(graph):
    private = {
        (e.source, e.target, name)
        for module, edges in graph.items() if _under(module, ("gsi.rewards",))
        for e in edges if not _under(e.target, ("gsi.rewards",))
        for name in e.names if name.startswith("_") and name != "__future__"
    }
    assert private <= KNOWN_PRIVATE, sorted(private - KNOWN_PRIVATE)


def test_the_walk_sees_lazy_and_relative_imports(tmp_path):
    """The checks above are only as good as the edge reader: it must see imports inside
    functions and resolve ``from . import x``, and skip ``if TYPE_CHECKING:`` blocks."""
    sample = tmp_path / "gsi" / "pkg" / "mod.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gsi.config\n"
        "from .sibling import _hidden\ndef f():\n    from gsi.decoding import CallStats\n"
    )
    got = {(e.source, e.target, e.names, e.lazy) for e in _edges(sample, tmp_path)}
    assert got == {("gsi.pkg.mod", "typing", ("TYPE_CHECKING",), False),
                   ("gsi.pkg.mod", "gsi.pkg.sibling", ("_hidden",), False),
                   ("gsi.pkg.mod", "gsi.decoding", ("CallStats",), True)}


@pytest.mark.e2e
def test_importing_the_library_registers_no_schema():
    """Schemas and resolvers come from gsi.config.register(), called by run.py, the job entry
    point and the tests; importing any module (the grader, even gsi.config) registers nothing."""
    code = (
        "import gsi.grading, gsi.data.hub, gsi.decoding, gsi.metrics, gsi.outputs, gsi.pipeline, gsi.config\n"
        "from hydra.core.config_store import ConfigStore\nfrom omegaconf import OmegaConf\n"
        "repo = ConfigStore.instance().repo\n"
        "print('gsi_schema.yaml' in repo, any(OmegaConf.has_resolver(r) for r in "
        "('gsi.run_id', 'gsi.toy_model', 'gsi.gpus_per_task')))\n"
        "gsi.config.register()\n"
        "print('gsi_schema.yaml' in repo, all(OmegaConf.has_resolver(r) for r in "
        "('gsi.run_id', 'gsi.toy_model', 'gsi.gpus_per_task')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "True", "True"]
