"""The figures of ``python -m analysis.exactness`` (matplotlib, Agg backend)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

COLORS = {
    "gsi": "tab:red",
    "gsi_consistent": "black",
    "gsi_no_reject": "tab:orange",
    "rsd": "tab:blue",
    "soft_bon_small": "tab:green",
    "soft_bon_big": "tab:purple",
}
DPI = 80


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tv_vs_n(ax, rows: list[dict[str, Any]], title: str) -> None:
    by_method = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    for method, rs in by_method.items():
        rs.sort(key=lambda r: r["n"])
        n = np.array([r["n"] for r in rs])
        tv = np.array([r["tv"] for r in rs])
        se = np.array([r["tv_se"] for r in rs])
        ax.errorbar(
            n, tv, yerr=2 * se, marker="o", ms=3, lw=1.2, capsize=2, color=COLORS.get(method), label=method,
            ls="--" if method == "gsi_consistent" else "-",  # often on top of gsi_no_reject
        )
        mc = np.array([r["estimator"] == "monte_carlo" for r in rs])
        if mc.any():
            ax.plot(n[mc], tv[mc], "s", mfc="none", ms=7, color=COLORS.get(method))
            floor = [r["noise_floor"] for r in rs if r["estimator"] == "monte_carlo"]
            ax.plot(n[mc], floor, "_", ms=12, mew=2, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("n (= n_S = n_B)")
    ax.set_ylabel("TV to target")
    ax.grid(alpha=0.3, which="both")


def plot_all(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write the three figures into ``out``; return their paths."""
    plt = _plt()
    paths = []
    n_rows = [r for r in records if r["sweep"] == "n"]
    panels: dict[tuple, list] = defaultdict(list)
    for r in n_rows:
        panels[(r["instance"], r["beta"])].append(r)
    keys = list(panels)
    cols = min(3, len(keys))
    nrows = -(-len(keys) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.3 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        rows = panels[key]
        u = next((r["threshold"] for r in rows if r["threshold"] is not None), None)
        _tv_vs_n(ax, rows, f"{key[0]}\nbeta={key[1]:g}, u={u:g} ({rows[0]['level']})")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        "TV to pi_B·exp(beta r) vs n "
        "(bars: 2 s.e.; squares: Monte Carlo through the loop, grey: its noise floor)",
        fontsize=10,
    )
    fig.tight_layout()
    paths.append(_save(fig, out / "tv_vs_n.png", plt))

    d_rows = [r for r in records if r["sweep"] == "distance"]
    if d_rows:
        ns = sorted({r["n"] for r in d_rows})
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
        for ax, key, label in zip(
            axes.flat, ("distance", "kl_big_small"), ("d_TV(pi_S, pi_B)", "KL(pi_B || pi_S)")
        ):
            for method, color in COLORS.items():
                for n, marker in zip(ns, "o^sv"):
                    rs = [r for r in d_rows if r["method"] == method and r["n"] == n]
                    ax.scatter(
                        [r[key] for r in rs],
                        [r["tv"] for r in rs],
                        s=8,
                        marker=marker,
                        color=color,
                        alpha=0.35,
                    )
                rs = [r for r in d_rows if r["method"] == method and r["n"] == ns[-1] and r[key] is not None]
                x, y = np.array([r[key] for r in rs]), np.array([r["tv"] for r in rs])
                edges = np.unique(np.quantile(x, np.linspace(0, 1, 7)))
                which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
                bins = [k for k in range(len(edges) - 1) if np.any(which == k)]
                ax.plot(
                    [x[which == k].mean() for k in bins],
                    [y[which == k].mean() for k in bins],
                    "-",
                    color=color,
                    lw=1.5,
                    label=f"{method} (mean, n={ns[-1]})" if key == "distance" else None,
                )
            ax.set_xlabel(label)
            ax.set_ylabel("TV to target (exact)")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=6, ncol=2)
        fig.suptitle(
            f"TV to the target vs the small-big gap "
            f"({len(d_rows) // len(COLORS) // len(ns)} random instances, "
            f"beta=5, u=0.5; dots: n in {ns}, lines: binned means)",
            fontsize=9,
        )
        fig.tight_layout()
        paths.append(_save(fig, out / "tv_vs_distance.png", plt))

    t_rows = [r for r in records if r["sweep"] == "threshold"]
    if t_rows:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
        labels = {
            "gsi": "gsi (u on s = r + log(pi_B/pi_S)/beta)",
            "gsi_consistent": "gsi_consistent (same u, restricted refill)",
            "rsd": "rsd (u on r)",
        }
        for method, label in labels.items():
            rs = sorted((r for r in t_rows if r["method"] == method), key=lambda r: r["threshold"])
            u = [r["threshold"] for r in rs]
            axes[0, 0].plot(
                u, [r["acceptance_rate"] for r in rs], "o-", ms=3, color=COLORS[method], label=label
            )
            axes[0, 1].plot(u, [r["tv"] for r in rs], "o-", ms=3, color=COLORS[method], label=label)
        axes[0, 0].set_ylabel("acceptance rate")
        axes[0, 1].set_ylabel("TV to target (exact)")
        for ax in axes.flat:
            ax.set_xlabel("threshold u")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7)
        n = t_rows[0]["n"]
        fig.suptitle(
            f"Acceptance and exactness vs threshold ({t_rows[0]['instance']}, beta=5, n={n})", fontsize=10
        )
        fig.tight_layout()
        paths.append(_save(fig, out / "acceptance_vs_threshold.png", plt))
    paths += _cost_and_bound(records, out, plt)
    return paths


def _cost_and_bound(records: list[dict[str, Any]], out: Path, plt) -> list[Path]:
    """cost_vs_tv.png: TV against expected big-model tokens (one curve per method, n
    growing along it); bound_vs_tv.png: docs/BOUNDS.md's bound against the measured TV."""
    paths = []
    n_rows = [r for r in records if r["sweep"] == "n" and r["level"] == "step"]
    panels = sorted({(r["instance"], r["beta"]) for r in n_rows}, key=str)
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.3), squeeze=False)
        for ax, key in zip(axes.flat, panels):
            for method, color in COLORS.items():
                rs = [r for r in n_rows if (r["instance"], r["beta"]) == key and r["method"] == method]
                rs.sort(key=lambda r: r["n"])
                if rs:
                    ax.plot([r["expected_big_tokens"] + 1.0 for r in rs], [max(r["tv"], 1e-4) for r in rs],
                            "o-", ms=3, color=color, label=method)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("1 + expected big-model tokens / step")
            ax.set_title(f"{key[0]}\nbeta={key[1]:g}", fontsize=8)
            ax.grid(alpha=0.3, which="both")
        axes[0, 0].set_ylabel("TV to target")
        axes[0, 0].legend(fontsize=6)
        fig.suptitle("Cost / exactness: each curve runs n = 1 ... 256 (u = 0.5)", fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / "cost_vs_tv.png", plt))
    b_rows = [r for r in records if r.get("bound") is not None]
    if b_rows:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8), squeeze=False)
        ax = axes[0, 0]
        for method in ("gsi_no_reject", "gsi_consistent", "soft_bon_big"):
            rs = [r for r in b_rows if r["method"] == method]
            ax.scatter([max(r["tv"], 1e-5) for r in rs], [r["bound"] for r in rs], s=9, alpha=0.5,
                       color=COLORS[method], label=method)
        lim = np.array([1e-5, 1.0])
        ax.plot(lim, lim, "k-", lw=0.8, label="bound = TV")
        ax.plot(lim, 10 * lim, "k--", lw=0.8, label="bound = 10 TV")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured TV")
        ax.set_ylabel("bound (docs/BOUNDS.md)")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3, which="both")
        ax = axes[0, 1]
        main = [r for r in b_rows if r["sweep"] == "n" and r["beta"] == 5.0 and r["level"] == "step"]
        main = [r for r in main if r["instance"] == main[0]["instance"]] if main else []
        for method in ("gsi_no_reject", "gsi_consistent"):
            rs = sorted((r for r in main if r["method"] == method), key=lambda r: r["n"])
            n = [r["n"] for r in rs]
            ax.plot(n, [r["tv"] for r in rs], "o-", ms=3, color=COLORS[method], label=f"{method} TV")
            ax.plot(n, [r["bound"] for r in rs], "--", color=COLORS[method], label=f"{method} bound")
            explicit = [r["explicit_bound"] for r in rs]
            ax.plot(n, explicit, ":", color=COLORS[method], label=f"{method} explicit")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n")
        ax.set_title(main[0]["instance"] + ", beta=5" if main else "", fontsize=8)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3, which="both")
        fig.suptitle("Bound vs measured TV (every bounded record; right: one instance)", fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / "bound_vs_tv.png", plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    tmp.replace(path)
    return path
