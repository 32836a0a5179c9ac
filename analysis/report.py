"""``python -m analysis.report PATH... [--out DIR]``: a sweep's table and plots.

Gathers every run directory under the PATHs (sweep or run directories), merges the
shards of each configuration, and writes into ``--out`` (default: ``report/`` inside
the first PATH): ``results.csv`` (a row per configuration, swept parameters first,
metrics with 95 % bootstrap intervals over problems), ``comparison.csv`` (gsi, rsd,
soft_bon_small, soft_bon_big at matched settings, when at least two are present),
``report.md`` (the same tables, the plots, and every failed or incomplete run) and
the PNG plots of :mod:`analysis.plots`.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from analysis.collect import NOT_IDENTITY, NOT_IDENTITY_PREFIXES, Configuration, RunDir, collect
from analysis.panels import SERIES
from analysis.stats import intervals

log = logging.getLogger("analysis.report")

FIRST_PARAMS = ("method.name", "beta", "threshold")
CI_METRICS = ("accuracy", "acceptance_rate", "mean_final_reward", "latency_mean_s")
PLAIN_METRICS = (
    "latency_p50_s",
    "latency_p95_s",
    "steps_per_problem",
    "tokens_small",
    "tokens_big",
    "wall_time_s",
    "num_problems",
    "num_errors",
    "num_shards",
)
COMPARED = ("gsi", "rsd", "soft_bon_small", "soft_bon_big")


def swept_params(configs: Sequence[Configuration]) -> list[str]:
    """method, beta, threshold, then every other config key whose value differs."""
    keys = sorted({k for c in configs for k in c.params})
    varying = [
        k
        for k in keys
        if k not in FIRST_PARAMS
        and k not in NOT_IDENTITY
        and not k.startswith(NOT_IDENTITY_PREFIXES)
        and len({repr(c.params.get(k)) for c in configs}) > 1
    ]
    return [*FIRST_PARAMS, *varying]


def entries(configs: Sequence[Configuration]) -> list[dict[str, Any]]:
    """One flat dict per configuration: config values, metrics, interval bounds."""
    out = []
    for c in configs:
        entry = {**c.params, **c.metrics}
        for metric, (lo, hi) in intervals(c.rows).items():
            entry[f"{metric}_lo"], entry[f"{metric}_hi"] = lo, hi
        entry["runs"] = ";".join(str(r.path) for r in c.runs)
        entry["missing_shards"] = ",".join(map(str, c.missing_shards))
        out.append(entry)
    key = lambda e: tuple(str(e.get(k)) for k in FIRST_PARAMS)  # noqa: E731
    return sorted(out, key=key)


def grader_accuracies(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``accuracy_<grader>`` of the other graders asked for (``dataset.grader=a+b``)."""
    return sorted({k for r in rows for k in r if k.startswith("accuracy_") and not k.endswith(("_lo", "_hi"))})


def table_columns(swept: Sequence[str], also: Sequence[str] = ()) -> list[str]:
    cols = list(swept)
    for m in CI_METRICS:
        cols += [m, f"{m}_lo", f"{m}_hi"]
    return cols + list(also) + list(PLAIN_METRICS) + ["missing_shards", "runs"]


def comparison(rows: Sequence[Mapping[str, Any]], swept: Sequence[str]) -> list[dict[str, Any]]:
    """The paper's table: the compared methods side by side at otherwise equal settings
    (β, n_small, n_big, data, models ...); latency relative to soft_bon_big."""
    present = [r for r in rows if r.get(SERIES) in COMPARED]
    if len({r[SERIES] for r in present}) < 2:
        return []
    setting_keys = [k for k in swept if k not in (SERIES, "threshold")]
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in present:
        groups.setdefault(tuple(repr(r.get(k)) for k in setting_keys), []).append(r)
    table = []
    for group in groups.values():
        if len({r[SERIES] for r in group}) < 2:
            continue
        big = [r["latency_mean_s"] for r in group if r[SERIES] == "soft_bon_big" and r.get("latency_mean_s")]
        for r in sorted(group, key=lambda r: (COMPARED.index(r[SERIES]), str(r.get("threshold")))):
            row = {
                "setting": ", ".join(f"{k}={r.get(k)}" for k in setting_keys) or "all",
                "method": r[SERIES],
            }
            row["threshold"] = r.get("threshold") if r[SERIES] in ("gsi", "rsd") else None
            for k in (
                "accuracy",
                "accuracy_lo",
                "accuracy_hi",
                "latency_mean_s",
                "acceptance_rate",
                "tokens_small",
                "tokens_big",
                "num_problems",
            ):
                row[k] = r.get(k)
            row["latency_vs_soft_bon_big"] = (
                r["latency_mean_s"] / big[0] if big and r.get("latency_mean_s") else None
            )
            table.append(row)
    return table


# ------------------------------------------------------------------ writing
def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _with_ci(row: Mapping[str, Any], metric: str) -> str:
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else ""
    return _fmt(row.get(metric)) + ci


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


MD_EXTRA = ("latency_p95_s", "tokens_small", "tokens_big", "num_problems", "num_errors")


def _result_cells(row: Mapping[str, Any], swept: Sequence[str], also: Sequence[str] = ()) -> list[str]:
    shards = _fmt(row.get("num_shards"))
    if row.get("missing_shards"):
        shards += f" (missing {row['missing_shards']})"
    return [
        *(_fmt(row.get(k)) for k in swept),
        *(_with_ci(row, m) for m in CI_METRICS),
        *(_fmt(row.get(k)) for k in also),
        *(_fmt(row.get(k)) for k in MD_EXTRA),
        shards,
    ]


def markdown(rows, swept, compare, plots: Mapping[str, str | None], bad: Sequence[RunDir], sources) -> str:
    also = grader_accuracies(rows)
    short = [k.split(".")[0] if k == SERIES else k for k in swept]
    parts = [
        "# Sweep report",
        "",
        f"Sources: {', '.join(str(s) for s in sources)}. {len(rows)} configuration(s); "
        f"{len(bad)} run(s) failed or incomplete. Intervals: 95 % bootstrap over problems.",
        "",
        "## Results",
        "",
        _md_table([*short, *CI_METRICS, *also, *MD_EXTRA, "shards"], [_result_cells(r, swept, also) for r in rows]),
    ]
    if compare:
        parts += [
            "",
            "## Method comparison",
            "",
            _md_table(
                [
                    "setting",
                    "method",
                    "u",
                    "accuracy",
                    "latency (s)",
                    "vs soft_bon_big",
                    "acceptance",
                    "tokens small",
                    "tokens big",
                ],
                [
                    [
                        c["setting"],
                        c["method"],
                        _fmt(c["threshold"]),
                        _with_ci(c, "accuracy"),
                        _fmt(c["latency_mean_s"]),
                        _fmt(c["latency_vs_soft_bon_big"]),
                        _fmt(c["acceptance_rate"]),
                        _fmt(c["tokens_small"]),
                        _fmt(c["tokens_big"]),
                    ]
                    for c in compare
                ],
            ),
        ]
    parts += ["", "## Plots", ""]
    for name, skipped in plots.items():
        parts.append(f"![{name}]({name}.png)" if skipped is None else f"- {name}: not drawn ({skipped})")
    parts += ["", "## Failed or incomplete runs", ""]
    if bad:
        parts.append(_md_table(["run", "status", "reason"], [[str(r.path), r.status, r.reason] for r in bad]))
    else:
        parts.append("None.")
    return "\n".join(parts) + "\n"


def build_report(paths: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write the report; return its table rows, comparison, plots and bad runs."""
    from analysis.plots import plot_all
    from gsi.outputs import atomic_write_text

    configs, bad = collect(paths)
    swept = swept_params(configs) if configs else list(FIRST_PARAMS)
    rows = entries(configs)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", _csv(rows, table_columns(swept, grader_accuracies(rows))))
    compare = comparison(rows, swept)
    if compare:
        atomic_write_text(out / "comparison.csv", _csv(compare, list(compare[0])))
    plots = plot_all(rows, swept, out) if rows else {}
    atomic_write_text(out / "report.md", markdown(rows, swept, compare, plots, bad, paths))
    return {"rows": rows, "swept": swept, "comparison": compare, "plots": plots, "bad": bad}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="sweep or run directories")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <first PATH>/report)")
    parser.add_argument("--table", choices=("full", "paper"), default="full",
                        help="paper: accuracy per data set x method and latency vs soft_bon_big (analysis.paper_table)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out = args.out or args.paths[0] / "report"
    if args.table == "paper":
        from analysis.paper_table import TableError, write

        try:
            _, md = write(args.paths, out)
        except TableError as exc:
            print(f"analysis.report: {exc}", file=sys.stderr)
            return 2
        print(md + f"-> {out}/paper_table.md, {out}/paper_table.tex")
        return 0
    try:
        report = build_report(args.paths, out)
    except FileNotFoundError as exc:
        print(f"analysis.report: {exc}", file=sys.stderr)
        return 2
    n_rows, n_bad = len(report["rows"]), len(report["bad"])
    print(f"{n_rows} configuration(s), {n_bad} failed/incomplete run(s) -> {out}/report.md")
    return 0 if report["rows"] or report["bad"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
