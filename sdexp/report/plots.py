"""Plots of each metric against each swept axis, one line per value of another axis (for
example CLIP score against CFG scale, one line per sampler), with 95% intervals as error bars.

Drawn with matplotlib's object API (Figure, no pyplot state) into SVG files that the report
embeds; nothing is fetched at view time."""
from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..axes import swept_columns
from ..estimates import Estimate, from_rows, group_estimate
from ..grid import AXIS_LABELS, format_value
from ..grid_rows import plain_value
from ..metrics.registry import MetricInfo
from .intervals import group_means_ci
from .tables import flagged, values_in_order

MAX_SPLIT_VALUES = 10      # more lines than this make an unreadable legend: no split then
MAX_CATEGORIES = 40        # an x axis with more categories than this is not plotted
MAX_TICK_CHARS = 24        # long category labels (prompts) are cut to this many characters
NOT_PLOTTED = ("seed",)    # seeds are samples, not a setting to compare


@dataclass(frozen=True)
class Plot:
    path: Path
    metric: str
    x: str
    split: str | None
    title: str


def plot_axes(rows: pd.DataFrame) -> list[str]:
    return [a for a in swept_columns(rows) if a not in NOT_PLOTTED]


def split_axis(x: str, swept: list[str], grid: dict | None, rows: pd.DataFrame) -> str | None:
    """The axis whose values become lines: the first grid axis other than x, else the first
    other swept axis; never seed or prompt, and only with few values."""
    preferred = [grid.get(k) for k in ("x", "y", "z")] if grid else []
    for axis in [*preferred, *swept]:
        if (axis and axis != x and axis in swept and axis not in ("seed", "prompt")
                and rows[axis].nunique() <= MAX_SPLIT_VALUES):
            return axis
    return None


def _is_numeric(values: list) -> bool:
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def _tick(value) -> str:
    text = format_value(value)
    return text if len(text) <= MAX_TICK_CHARS else text[:MAX_TICK_CHARS - 1] + "\u2026"


def series(rows: pd.DataFrame, groups: pd.DataFrame | None, info: MetricInfo, x: str,
           split: str | None, swept: list[str]) -> dict:
    """{split value: [(x value, Estimate)]}: a rows column pooled over everything else, or the
    groups table's rows that pool every other swept axis (grouped by x and split, e.g. scored
    with group_by=[cfg,sampler]); nothing when the table has no such rows."""
    xs = values_in_order(rows[x])
    splits = values_in_order(rows[split]) if split else [None]
    others = [a for a in swept if a not in (x, split) and a != "seed"]
    out = {}
    per_image = from_rows(info, rows.columns)
    if per_image:     # every point at once: one group per (split value, x value)
        xi = rows[x].map(plain_value).map({v: i for i, v in enumerate(xs)}).to_numpy()
        si = rows[split].map(plain_value).map({v: i for i, v in enumerate(splits)}).to_numpy() if split else 0
        values = pd.to_numeric(rows[info.column], errors="coerce").where(~flagged(rows))
        stats = group_means_ci(values.to_numpy(), si * len(xs) + xi, len(xs) * len(splits))
    for j, sv in enumerate(splits):
        points = []
        for i, xv in enumerate(xs):
            if per_image:
                mean, low, high, n = stats[j * len(xs) + i]
                est = Estimate(float(mean), float(low), float(high), int(n)) if n else None
            else:
                where = {x: xv, **({split: sv} if split else {})}
                est = group_estimate(groups, info, where, pooled_over=others)
            if est is not None and not math.isnan(est.value):
                points.append((xv, est))
        if points:
            out[sv] = points
    return out


def draw(data: dict, info: MetricInfo, x: str, split: str | None, numeric: bool, xs: list) -> bytes:
    """The SVG of one plot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    n = len(data)
    for i, (sv, points) in enumerate(data.items()):
        if numeric:
            span = (max(xs) - min(xs)) or 1.0
            shift = (i - (n - 1) / 2) * 0.015 * span if n > 1 else 0.0   # bars side by side
            px = [float(p[0]) + shift for p in points]
        else:
            px = [xs.index(p[0]) + (i - (n - 1) / 2) * min(0.3, 0.6 / max(n, 1)) for p in points]
        py = [p[1].value for p in points]
        low = [p[1].value - p[1].low if p[1].has_interval else 0.0 for p in points]
        high = [p[1].high - p[1].value if p[1].has_interval else 0.0 for p in points]
        label = format_value(sv) if split else None
        ax.errorbar(px, py, yerr=[low, high], marker="o", markersize=5, capsize=3, linewidth=1.6,
                    linestyle="-" if numeric else "none", label=label)
    if numeric:
        ax.set_xticks([float(v) for v in xs], [format_value(v) for v in xs])
        ax.margins(x=0.08)
    else:
        # prompts are numbered as in the report's list of prompts
        ticks = [f"{k}: {_tick(v)}" if x == "prompt" else _tick(v) for k, v in enumerate(xs, 1)]
        long = any(len(t) > 8 for t in ticks)
        ax.set_xticks(range(len(xs)), ticks, rotation=20 if long else 0, ha="right" if long else "center")
        ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_xlabel(AXIS_LABELS[x])
    direction = "higher is better" if info.higher_is_better else "lower is better"
    ax.set_ylabel(f"{info.display_name} ({direction})")
    ax.grid(True, alpha=0.3)
    if split:
        ax.legend(title=AXIS_LABELS[split], fontsize="small", title_fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def make_plots(rows: pd.DataFrame, groups: pd.DataFrame | None, metrics: list[MetricInfo],
               grid: dict | None, out_dir: Path, write) -> list[Plot]:
    """One SVG per (metric, swept axis); `write(path, bytes)` stores each file."""
    swept = plot_axes(rows)
    plots = []
    for info in metrics:
        for x in swept:
            xs = values_in_order(rows[x])
            numeric = _is_numeric(xs)
            if not numeric and len(xs) > MAX_CATEGORIES:
                continue
            split = split_axis(x, swept, grid, rows)
            data = series(rows, groups, info, x, split, swept)
            if not data and split:   # a group metric may exist pooled over the split axis only
                split = None
                data = series(rows, groups, info, x, None, swept)
            if not data:
                continue
            name = f"{info.name}-vs-{x}" + (f"-by-{split}" if split else "") + ".svg"
            path = out_dir / name
            write(path, draw(data, info, x, split, numeric, xs))
            title = f"{info.display_name} against {AXIS_LABELS[x]}" + (
                f", one line per {AXIS_LABELS[split]}" if split else "")
            plots.append(Plot(path, info.name, x, split, title))
    return plots
