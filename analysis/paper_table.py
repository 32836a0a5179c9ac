"""The paper's table from sweep directories: accuracy per data set x method with 95 %
intervals, and end-to-end latency relative to soft best-of-n with pi_B (``soft_bon_big``).

``python -m analysis.report --table paper PATH...`` writes ``paper_table.md`` and
``paper_table.tex`` (``--out``, default ``<first PATH>/report/``) and prints the Markdown.

One cell is one (``dataset.name``, ``method.name``); configurations that differ only in
``seed`` are pooled (their problems together), any other difference inside a cell is an
error naming the keys. Accuracy: mean over problems, 95 % percentile bootstrap. Latency:
mean per-problem ``latency_s`` of the method over that of ``soft_bon_big`` on the problems
both ran, with a paired bootstrap interval (problems resampled together).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.collect import NOT_IDENTITY, NOT_IDENTITY_PREFIXES, Configuration, collect
from analysis.stats import bootstrap_mean, bootstrap_ratio

DATASET_ORDER = ("math500", "olympiadbench", "minerva_math", "mmlu_stem", "gsm8k")
METHOD_ORDER = ("soft_bon_small", "rsd", "gsi", "soft_bon_big")
LABELS = {"soft_bon_small": "soft-BoN π_S", "rsd": "RSD", "gsi": "GSI", "soft_bon_big": "soft-BoN π_B"}
LATEX_LABELS = {"soft_bon_small": r"Soft BoN $\pi_S$", "rsd": "RSD", "gsi": "GSI",
                "soft_bon_big": r"Soft BoN $\pi_B$"}
BASELINE = "soft_bon_big"
POOLED = ("seed",)


class TableError(ValueError):
    """The runs do not make one paper table; the message says why and what to do."""


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    problems: int
    accuracy: float
    accuracy_ci: tuple[float | None, float | None]
    latency_ratio: float | None  # mean latency / soft_bon_big's on the same problems
    latency_ci: tuple[float | None, float | None]


def _order(values, preferred: Sequence[str]) -> list[str]:
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _group(configs: Sequence[Configuration]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows per (data set, method), checking that each cell is one configuration up to seeds."""
    cells: dict[tuple[str, str], list[Configuration]] = {}
    for c in configs:
        key = (str(c.params.get("dataset.name")), str(c.params.get("method.name")))
        cells.setdefault(key, []).append(c)
    out = {}
    for (dataset, method), group in cells.items():
        keys = {k for c in group for k in c.params}
        differ = sorted(
            k for k in keys
            if k not in POOLED and k not in NOT_IDENTITY and not k.startswith(NOT_IDENTITY_PREFIXES)
            and len({repr(c.params.get(k)) for c in group}) > 1
        )
        if differ:
            raise TableError(
                f"data set {dataset}, method {method}: {len(group)} configurations differ in "
                f"{', '.join(differ)}; give paths that hold one configuration per cell (seeds are pooled)"
            )
        rows = [dict(r, _seed=c.params.get("seed")) for c in group for r in c.rows]
        out[(dataset, method)] = rows
    return out


def _latency(rows: list[dict], base: list[dict] | None) -> tuple[float | None, tuple]:
    if not base:
        return None, (None, None)
    mine = {(r["_seed"], r["problem_id"]): float(r["latency_s"]) for r in rows if r.get("latency_s") is not None}
    theirs = {(r["_seed"], r["problem_id"]): float(r["latency_s"]) for r in base if r.get("latency_s") is not None}
    common = sorted(set(mine) & set(theirs))
    if not common:  # different seeds: compare by problem alone
        mine = {k[1]: v for k, v in mine.items()}
        theirs = {k[1]: v for k, v in theirs.items()}
        common = sorted(set(mine) & set(theirs))
    if not common:
        return None, (None, None)
    num = np.array([mine[k] for k in common])
    den = np.array([theirs[k] for k in common])
    if den.sum() <= 0:
        return None, (None, None)
    return float(num.sum() / den.sum()), bootstrap_ratio(num, den)


def cells(configs: Sequence[Configuration]) -> list[Cell]:
    grouped = _group(configs)
    out = []
    for (dataset, method), rows in grouped.items():
        correct = np.array([float(bool(r["correct"])) for r in rows])
        ratio, ci = _latency(rows, grouped.get((dataset, BASELINE)))
        out.append(Cell(dataset, method, len(rows), float(correct.mean()) if len(rows) else float("nan"),
                        bootstrap_mean(correct), ratio, ci))
    return out


def _grid(table: Sequence[Cell]) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    by = {(c.dataset, c.method): c for c in table}
    return (_order({c.dataset for c in table}, DATASET_ORDER),
            _order({c.method for c in table}, METHOD_ORDER), by)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _acc(c: Cell | None, sep: str = "–") -> str:
    if c is None:
        return "n/a"
    lo, hi = c.accuracy_ci
    return f"{_pct(c.accuracy)} [{_pct(lo)}{sep}{_pct(hi)}]"


def _lat(c: Cell | None, sep: str = "–", times: str = "×") -> str:
    if c is None or c.latency_ratio is None:
        return "n/a"
    lo, hi = c.latency_ci
    inner = f" [{lo:.2f}{sep}{hi:.2f}]" if lo is not None else ""
    return f"{c.latency_ratio:.2f}{times}{inner}"


def markdown(table: Sequence[Cell]) -> str:
    datasets, methods, by = _grid(table)
    lines = ["Accuracy (%) with 95 % bootstrap intervals over problems; n = problems per cell.", ""]
    head = "| method | " + " | ".join(f"{d} (n={max((by[d, m].problems for m in methods if (d, m) in by), default=0)})"
                                       for d in datasets) + " |"
    lines += [head, "|---|" + "---:|" * len(datasets)]
    lines += ["| " + LABELS.get(m, m) + " | " + " | ".join(_acc(by.get((d, m))) for d in datasets) + " |" for m in methods]
    lines += ["", f"End-to-end latency relative to {LABELS[BASELINE]} (mean per-problem latency ratio, "
                  "paired 95 % bootstrap interval).", ""]
    lines += ["| method | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    lines += ["| " + LABELS.get(m, m) + " | " + " | ".join(_lat(by.get((d, m))) for d in datasets) + " |" for m in methods]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%")


def latex(table: Sequence[Cell]) -> str:
    """A booktabs table: one accuracy block and one latency block, a column per data set."""
    datasets, methods, by = _grid(table)
    cols = "l" + "c" * len(datasets)
    out = [r"\begin{tabular}{" + cols + "}", r"\toprule",
           "Method & " + " & ".join(_tex(d) for d in datasets) + r" \\", r"\midrule",
           r"\multicolumn{" + str(len(datasets) + 1) + r"}{l}{\emph{Accuracy (\%), 95\% CI}} \\"]
    for m in methods:
        label = LATEX_LABELS.get(m, _tex(m))
        out.append(label + " & " + " & ".join(_acc(by.get((d, m)), sep="--") for d in datasets) + r" \\")
    out += [r"\midrule", r"\multicolumn{" + str(len(datasets) + 1) + r"}{l}{\emph{Latency relative to Soft BoN $\pi_B$}} \\"]
    for m in methods:
        label = LATEX_LABELS.get(m, _tex(m))
        out.append(label + " & " + " & ".join(_lat(by.get((d, m)), sep="--", times=r"$\times$") for d in datasets) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write(paths: Sequence[Path], out: Path) -> tuple[list[Cell], str]:
    """Collect the runs under ``paths``; write paper_table.md/.tex into ``out``."""
    from gsi.outputs import atomic_write_text

    configs, _bad = collect(paths)
    if not configs:
        raise TableError(f"no finished runs under {', '.join(map(str, paths))}: run the sweep first")
    table = cells(configs)
    md = markdown(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "paper_table.md", md)
    atomic_write_text(out / "paper_table.tex", latex(table))
    return table, md
