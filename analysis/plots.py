"""PNG plots of a sweep (matplotlib, Agg): the panels of :mod:`analysis.panels` and
tokens per model per method. One entry per configuration: its flattened config,
its metrics and ``<metric>_lo`` / ``<metric>_hi`` interval bounds."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from analysis.panels import PANELS, SERIES, TOKENS, Panel

FIGSIZE = (6.4, 4.8)
DPI = 100  # 640 x 480 pixels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _save(fig, path: Path) -> None:
    """Write the PNG atomically (temp file + rename) at exactly FIGSIZE * DPI."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        _pyplot().close(fig)


def _rejects(method: str) -> bool:
    from gsi.methods import METHODS

    return method in METHODS and METHODS[method].rejects


def _label(entry: Mapping[str, Any], keys: Sequence[str]) -> str:
    parts = [str(entry.get(SERIES))]
    parts += [f"{k.split('.')[-1]}={entry.get(k)}" for k in keys]
    return " ".join(parts)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower x and higher y."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_panel(
    panel: Panel, entries: Sequence[Mapping[str, Any]], swept: Sequence[str], out: Path
) -> str | None:
    """Draw one panel; return why it was skipped, or None when the PNG was written."""
    chosen = [e for e in entries if not panel.rejecting_only or _rejects(str(e.get(SERIES)))]
    points = [e for e in chosen if _num(e.get(panel.x)) is not None and _num(e.get(panel.y)) is not None]
    if not points:
        return "no configuration has both values" + (
            " (no method with a threshold)" if panel.rejecting_only else ""
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    varying = [k for k in swept if k not in (panel.x, SERIES) and len({repr(e.get(k)) for e in points}) > 1]
    others = [] if panel.x_is_metric else varying
    on_front: set[int] = set()
    if panel.pareto:
        on_front = {id(points[i]) for i in pareto_front([(_num(e[panel.x]), _num(e[panel.y])) for e in points])}
    series: dict[str, list[Mapping[str, Any]]] = {}
    for e in points:
        series.setdefault(_label(e, others), []).append(e)
    for label, group in sorted(series.items()):
        group = sorted(group, key=lambda e: _num(e[panel.x]))
        xs = [_num(e[panel.x]) for e in group]
        ys = [_num(e[panel.y]) for e in group]
        lo = [
            y - (_num(e.get(f"{panel.y}_lo")) if _num(e.get(f"{panel.y}_lo")) is not None else y)
            for e, y in zip(group, ys)
        ]
        hi = [
            (_num(e.get(f"{panel.y}_hi")) if _num(e.get(f"{panel.y}_hi")) is not None else y) - y
            for e, y in zip(group, ys)
        ]
        style = "o" if panel.x_is_metric else "o-"
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style, capsize=3, label=label)
        if panel.x_is_metric:  # points are configurations: name them by what varies within
            # their method (on a Pareto panel only the points on the front, to stay readable)
            own = [k for k in varying if len({repr(e.get(k)) for e in group}) > 1]
            for e, x, y in zip(group, xs, ys):
                text = " ".join(f"{k.split('.')[-1]}={e.get(k)}" for k in own)
                if text and (not panel.pareto or id(e) in on_front):
                    ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    xs_all = [_num(e[panel.x]) for e in points]
    if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10:
        ax.set_xscale("log")
    if panel.pareto:
        pts = [(_num(e[panel.x]), _num(e[panel.y])) for e in points]
        front = pareto_front(pts)
        ax.step(
            [pts[i][0] for i in front],
            [pts[i][1] for i in front],
            where="post",
            color="black",
            linestyle="--",
            linewidth=1,
            label="Pareto front",
        )
        ax.scatter(
            [pts[i][0] for i in front],
            [pts[i][1] for i in front],
            s=120,
            facecolors="none",
            edgecolors="black",
            zorder=3,
        )
    dropped = len(chosen) - len(points)
    title = panel.title + (f" ({dropped} non-finite point(s) left out)" if dropped else "")
    ax.set(title=title, xlabel=panel.x_label, ylabel=panel.y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, out / f"{panel.name}.png")
    return None


def plot_tokens(entries: Sequence[Mapping[str, Any]], out: Path) -> str | None:
    """Stacked bars: tokens generated per problem by each model, per method (mean over
    the method's configurations)."""
    per_method: dict[str, list[tuple[float, float]]] = {}
    for e in entries:
        n = _num(e.get("num_problems"))
        if n:
            per_method.setdefault(str(e.get(SERIES)), []).append(
                tuple((_num(e.get(k)) or 0.0) / n for k in TOKENS)
            )
    if not per_method:
        return "no configuration with problems"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    methods = sorted(per_method)
    small = [sum(t[0] for t in per_method[m]) / len(per_method[m]) for m in methods]
    big = [sum(t[1] for t in per_method[m]) / len(per_method[m]) for m in methods]
    ax.bar(methods, small, label="small model")
    ax.bar(methods, big, bottom=small, label="big model")
    ax.set(title="Tokens generated per problem", ylabel="tokens per problem (mean over configurations)")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    _save(fig, out / "tokens_per_method.png")
    return None


def plot_all(entries: Sequence[Mapping[str, Any]], swept: Sequence[str], out: Path) -> dict[str, str | None]:
    """Every plot: ``{name: None}`` when written, ``{name: reason}`` when skipped."""
    out.mkdir(parents=True, exist_ok=True)
    done = {p.name: plot_panel(p, entries, swept, out) for p in PANELS}
    done["tokens_per_method"] = plot_tokens(entries, out)
    return done
