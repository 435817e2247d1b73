"""The report's tables: one row per grid cell (every setting but seed and prompt) with every
metric and its interval, and the best cell of each metric. Built from the metric registry's
metadata, never from code written for one metric."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..axes import swept_columns
from ..estimates import Estimate, available_metrics, estimate
from ..grid import ordered_values, plain_value
from ..metrics.registry import MetricInfo

AGGREGATED = ("seed", "prompt")    # a cell pools its seeds and prompts


@dataclass
class Cell:
    cell_id: str
    settings: dict                 # axis -> value, for the axes that tell cells apart
    n_images: int
    first_image: str | None        # image_path of its first image (smallest seed, first prompt)
    first_image_id: str | None
    estimates: dict = field(default_factory=dict)   # metric name -> Estimate | None
    best: list = field(default_factory=list)        # names of the metrics this cell is best at


@dataclass
class CellTable:
    axes: list[str]                # columns that tell cells apart
    metrics: list[MetricInfo]
    cells: list[Cell]
    best: dict                     # metric name -> Cell (absent when no cell has a value)


def cell_axes(rows: pd.DataFrame) -> list[str]:
    """Axes that vary between cells (seed and prompt are pooled inside a cell)."""
    axes = [a for a in swept_columns(rows) if a not in AGGREGATED]
    return axes or [a for a in ("model",) if a in rows.columns]


def cell_table(rows: pd.DataFrame, groups: pd.DataFrame | None = None) -> CellTable:
    axes = cell_axes(rows)
    metrics = available_metrics(rows, groups)
    key = "cell_id" if "cell_id" in rows.columns else None
    records = [{k: plain_value(v) for k, v in r.items()} for r in rows.to_dict("records")]
    by_cell: dict = {}
    for rec in records:
        by_cell.setdefault(rec[key] if key else tuple(rec[a] for a in axes), []).append(rec)

    order = {a: ordered_values(rows[a]) for a in axes}

    def sort_key(recs):
        return tuple(order[a].index(recs[0][a]) for a in axes)

    cells = []
    for cid, recs in sorted(by_cell.items(), key=lambda kv: sort_key(kv[1])):
        settings = {a: recs[0][a] for a in axes}
        shown = sorted(recs, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        first = next((r for r in shown if r.get("image_path")), None)
        cell = Cell(str(cid), settings, len(recs), first and first["image_path"],
                    first and first.get("image_id"))
        for info in metrics:
            cell.estimates[info.name] = estimate(info, recs, settings, groups)
        cells.append(cell)

    best = {}
    for info in metrics:
        scored = [c for c in cells if _value(c.estimates.get(info.name)) is not None]
        if not scored:
            continue
        pick = (max if info.higher_is_better else min)(scored, key=lambda c: c.estimates[info.name].value)
        pick.best.append(info.name)
        best[info.name] = pick
    return CellTable(axes, metrics, cells, best)


def _value(est: Estimate | None) -> float | None:
    if est is None or math.isnan(est.value):
        return None
    return est.value


def table_frame(table: CellTable) -> pd.DataFrame:
    """The cell table as a DataFrame (written next to the report as cells.csv)."""
    out = []
    for c in table.cells:
        row = {"cell_id": c.cell_id, **c.settings, "images": c.n_images}
        for info in table.metrics:
            est = c.estimates.get(info.name)
            row[info.name] = est.value if est else None
            row[f"{info.name}_ci_low"] = est.low if est else None
            row[f"{info.name}_ci_high"] = est.high if est else None
            row[f"{info.name}_best"] = info.name in c.best
        out.append(row)
    return pd.DataFrame(out)
