"""The report's tables: one row per grid cell (every setting but seed and prompt) with every
metric and its interval, and the best cell of each metric. Built from the metric registry's
metadata, never from code written for one metric."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..axes import AXES, swept_columns
from ..estimates import Estimate, available_metrics, estimate, from_rows
from ..grid_rows import ordered_values, plain_value
from ..metrics.registry import MetricInfo
from .intervals import group_means_ci

AGGREGATED = ("seed", "prompt")    # a cell pools its seeds and prompts


def axis_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The distinct combinations of the axis columns: what swept-axis detection needs of the rows."""
    return rows[[a for a in AXES if a in rows.columns]].drop_duplicates()


def values_in_order(column: pd.Series) -> list:
    """grid.ordered_values of a column, read from its distinct values only."""
    return ordered_values(column.unique())


def flagged(rows: pd.DataFrame) -> pd.Series:
    """Rows whose image is flagged (column image_flags non-empty); they are left out of metrics."""
    if "image_flags" not in rows.columns:
        return pd.Series(False, index=rows.index)
    return rows["image_flags"].fillna("").astype(str).ne("")


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
    axes = [a for a in swept_columns(axis_frame(rows)) if a not in AGGREGATED]
    return axes or [a for a in ("model",) if a in rows.columns]


def cell_table(rows: pd.DataFrame, groups: pd.DataFrame | None = None) -> CellTable:
    """One Cell per cell_id (or per combination of the cell axes), in the order of the axes' values.
    Per-image metrics are averaged over the cell's healthy images with the bootstrap interval of
    report.intervals (equal to estimates.image_estimate's), all cells at once."""
    axes = cell_axes(rows)
    metrics = available_metrics(rows, groups)
    keys = rows["cell_id"].astype(str) if "cell_id" in rows.columns else pd.Series(
        list(zip(*(rows[a].map(plain_value) for a in axes))), index=rows.index)
    codes, uniques = pd.factorize(keys)
    n_cells = len(uniques)
    seeds = pd.to_numeric(rows["seed"], errors="coerce") if "seed" in rows.columns else pd.Series(0, index=rows.index)
    # each cell's first image: the smallest seed (rows without an image last), first in row order
    has_image = rows["image_path"].notna() if "image_path" in rows.columns else pd.Series(False, index=rows.index)
    order = pd.DataFrame({"cell": codes, "noimage": ~has_image.to_numpy(), "noseed": seeds.isna().to_numpy(),
                          "seed": seeds.fillna(0).to_numpy()}).sort_values(["cell", "noimage", "noseed", "seed"],
                                                                           kind="stable")
    first = order.drop_duplicates("cell").sort_values("cell").index.to_numpy()
    counts = np.bincount(codes, minlength=n_cells)
    settings_of = {a: [plain_value(v) for v in rows[a].to_numpy(dtype=object)[first]] for a in axes}
    healthy = ~flagged(rows).to_numpy()
    stats = {info.name: group_means_ci(np.where(healthy, pd.to_numeric(rows[info.column], errors="coerce"), np.nan),
                                       codes, n_cells)
             for info in metrics if from_rows(info, rows.columns)}
    paths = rows["image_path"].to_numpy(dtype=object) if "image_path" in rows.columns else None
    ids = rows["image_id"].to_numpy(dtype=object) if "image_id" in rows.columns else None
    cells = []
    for k in range(n_cells):
        settings = {a: settings_of[a][k] for a in axes}
        i = first[k]
        path = paths[i] if paths is not None and has_image.iloc[i] else None
        cell = Cell(str(uniques[k]) if "cell_id" in rows.columns else str(tuple(settings.values())), settings,
                    int(counts[k]), path, ids[i] if ids is not None and path else None)
        for info in metrics:
            if info.name in stats:
                mean, low, high, n = stats[info.name][k]
                cell.estimates[info.name] = None if n == 0 else Estimate(float(mean), float(low), float(high), int(n))
            else:
                cell.estimates[info.name] = estimate(info, [], settings, groups)
        cells.append(cell)
    position = {a: {v: i for i, v in enumerate(values_in_order(rows[a]))} for a in axes}
    cells.sort(key=lambda c: tuple(position[a][c.settings[a]] for a in axes))

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
