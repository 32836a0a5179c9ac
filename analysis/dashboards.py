"""W&B dashboards as code: the panels of :mod:`analysis.panels` as a W&B workspace.

``python -m analysis.dashboards --project gsi [--entity E] [--group G]`` builds a
workspace (sweep panels across runs, from each run's summary and config, grouped by
method; per-run curves against ``problem/index`` and ``step/index``) and saves it to
the project when you are logged in to W&B; otherwise (or with ``--dry-run``) it
writes the workspace definition as JSON and pushes nothing. Needs ``wandb-workspaces``
(the ``tracking`` extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from analysis.panels import CURVES, PANELS, SERIES, TOKENS

log = logging.getLogger("analysis.dashboards")


def _ws():
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    return ws, wr


def sweep_panels() -> list[Any]:
    """The cross-run panels: metric vs config value (or metric), one colour per method."""
    ws, wr = _ws()
    panels = []
    for p in PANELS:
        x = wr.SummaryMetric(p.x) if p.x_is_metric else wr.Config(p.x)
        panels.append(wr.ScatterPlot(title=p.title, x=x, y=wr.SummaryMetric(p.y)))
    panels.append(
        wr.BarPlot(
            title="Tokens per run", metrics=[wr.SummaryMetric(k) for k in TOKENS], groupby=wr.Config(SERIES)
        )
    )
    return panels


def curve_panels() -> list[Any]:
    """Per-run curves logged by gsi.tracking."""
    _, wr = _ws()
    return [wr.LinePlot(title=title, x=x, y=list(ys)) for title, x, ys in CURVES]


def build_workspace(entity: str, project: str, group: str | None = None, name: str = "gsi sweeps"):
    """The workspace definition (nothing is sent)."""
    ws, _ = _ws()
    runset = ws.RunsetSettings(filters=ws.And(ws.Metric("Group") == group) if group else [])
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=[
            ws.Section(name="Sweep: accuracy, acceptance, latency", panels=sweep_panels(), is_open=True),
            ws.Section(name="Per run: problems and decoding steps", panels=curve_panels(), is_open=True),
        ],
        runset_settings=runset,
    )


def definition(workspace) -> dict[str, Any]:
    """The JSON W&B would receive for ``workspace`` (its view spec)."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def panel_keys(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"title", "type", "x", "y"}]`` of every panel in a definition."""
    out = []
    for section in spec["spec"]["section"]["panelBankConfig"]["sections"]:
        for panel in section["panels"]:
            cfg = panel["config"]
            y = cfg.get("metrics") or cfg.get("yAxis")
            out.append(
                {
                    "section": section["name"],
                    "title": cfg.get("chartTitle"),
                    "type": panel["viewType"],
                    "x": cfg.get("xAxis"),
                    "y": y if isinstance(y, list) else [y],
                }
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.dashboards", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--project", default="gsi")
    parser.add_argument("--entity", default=None, help="W&B user or team (default: your default entity)")
    parser.add_argument("--group", default=None, help="only this W&B group (one sweep)")
    parser.add_argument("--name", default="gsi sweeps")
    parser.add_argument("--dry-run", action="store_true", help="write the definition, push nothing")
    parser.add_argument("--out", type=Path, default=Path("wandb_workspace.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from gsi.tracking import logged_in

    online = logged_in() and not args.dry_run
    entity = args.entity
    if online and entity is None:
        import wandb

        entity = wandb.Api().default_entity
    workspace = build_workspace(entity or "<entity>", args.project, args.group, args.name)
    if not online:
        args.out.write_text(json.dumps(definition(workspace), indent=2) + "\n")
        why = "--dry-run" if args.dry_run else "not logged in to W&B (WANDB_API_KEY or netrc)"
        print(f"{why}: wrote the workspace definition to {args.out}; nothing pushed")
        return 0
    try:
        saved = workspace.save()
    except Exception as exc:  # noqa: BLE001 - one clear line for the user
        print(
            f"analysis.dashboards: could not save the workspace: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return 1
    print(f"saved workspace: {saved.url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
