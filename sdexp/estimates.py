"""A metric's value for a set of images, with its interval, from either table: per-image metrics
(a column of the rows) are averaged with a bootstrap interval; per-group metrics (FID, KID) are
looked up in the groups table (results/<name>/groups/*.parquet) when it exists.

Grids and the report both use these, so a cell shows the same number in both."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .image_health import is_flagged
from .metrics.registry import METRICS, MetricInfo, get_metric
from .stats import bootstrap_mean_ci


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float      # interval bounds; nan when there is no interval (one image, or none given)
    high: float
    n: int          # images behind it

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.has_interval else float("nan")


def metric_info(metric: MetricInfo | str) -> MetricInfo:
    return metric if isinstance(metric, MetricInfo) else get_metric(metric)


def image_estimate(values) -> Estimate | None:
    """Mean and 95% bootstrap interval of per-image values; None when none is a number."""
    vals = [float(v) for v in values if v is not None and not _isnan(v)]
    if not vals:
        return None
    mean, low, high = bootstrap_mean_ci(vals)
    return Estimate(mean, low, high, len(vals))


def _isnan(v) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def read_groups(folder: Path | str) -> pd.DataFrame | None:
    """The group-metrics table of a stored sweep, or None when it has none (yet)."""
    parts = sorted((Path(folder) / "groups").glob("*.parquet"))
    if not parts:
        return None
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return df if {"metric", "value"} <= set(df.columns) else None


def result_set(groups: pd.DataFrame | None, info: MetricInfo) -> pd.DataFrame | None:
    """The groups-table rows that give this metric's own value: statistic 'value' for per-group
    metrics (FID, KID), 'mean' for per-image ones (not paired differences); when the metric was
    scored against several references, the reference with most rows (then the first by name)."""
    if groups is None or groups.empty or "metric" not in groups.columns:
        return None
    sel = groups[groups["metric"] == info.name]
    if "statistic" in sel.columns:
        sel = sel[sel["statistic"].fillna("value") == ("value" if info.per == "group" else "mean")]
    if "reference" in sel.columns and sel["reference"].nunique() > 1:
        counts = sel["reference"].value_counts()
        pick = sorted(counts[counts == counts.max()].index)[0]
        sel = sel[sel["reference"] == pick]
    return sel if not sel.empty else None


def reference_of(groups: pd.DataFrame | None, info: MetricInfo) -> str | None:
    """The reference the shown values of a metric were computed against, if any."""
    sel = result_set(groups, info)
    if sel is None or "reference" not in sel.columns or sel["reference"].isna().all():
        return None
    return str(sel["reference"].dropna().iloc[0])


def group_estimate(groups: pd.DataFrame | None, metric: MetricInfo | str, where: dict,
                   pooled_over: list[str] = ()) -> Estimate | None:
    """The groups-table row of `metric` whose axis columns equal `where` (axes the table lacks
    are ignored; a blank axis is a pooled row and does not match) and whose `pooled_over` axes
    are blank. When several rows match, one with grouping 'cell' is preferred, then the one
    with most images."""
    info = metric_info(metric)
    sel = result_set(groups, info)
    if sel is None:
        return None
    for axis in pooled_over:
        if axis in sel.columns:
            sel = sel[sel[axis].isna()]
    for axis, value in where.items():
        if axis in sel.columns and not sel.empty:
            col = sel[axis]
            if isinstance(value, float) or pd.api.types.is_float_dtype(col):
                mask = pd.to_numeric(col, errors="coerce") == value
            else:
                mask = col.astype(object) == value
            sel = sel[mask.fillna(False).astype(bool)]
    if sel.empty:
        return None
    if "grouping" in sel.columns and (sel["grouping"] == "cell").any():
        sel = sel[sel["grouping"] == "cell"]
    if "n" in sel.columns and len(sel) > 1:
        sel = sel.sort_values("n", ascending=False, kind="stable")
    row = sel.iloc[0]

    def num(key):
        return float(row[key]) if key in row.index and not _isnan(row[key]) else float("nan")

    n = int(row["n"]) if "n" in row.index and not _isnan(row["n"]) else 0
    return Estimate(num("value"), num("ci_low"), num("ci_high"), n)


def from_rows(info: MetricInfo, columns) -> bool:
    """Whether a metric's values are a column of the rows (else they are in the groups table)."""
    return info.per == "image" and info.column is not None and info.column in columns


def estimate(metric: MetricInfo | str, records: list[dict], where: dict,
             groups: pd.DataFrame | None = None) -> Estimate | None:
    """The metric for these image records (one grid or table cell): the mean of a rows column
    with its bootstrap interval, or the groups table's row for this cell."""
    info = metric_info(metric)
    if records and from_rows(info, records[0]):
        return image_estimate(r.get(info.column) for r in records if not is_flagged(r))   # image health
    return group_estimate(groups, info, where)


def decimals(value: float) -> int:
    """Three significant figures, at least one decimal below 100: 31.2, 0.0123, 152."""
    if value == 0 or _isnan(value) or math.isinf(value):
        return 1
    return max(0, min(6, 2 - math.floor(math.log10(abs(value)))))


def format_number(value: float, places: int | None = None) -> str:
    if _isnan(value):
        return "n/a"
    return f"{value:.{decimals(value) if places is None else places}f}"


def format_estimate(metric: MetricInfo | str, est: Estimate | None, label: bool = True) -> str:
    """'CLIP 31.2 +/- 0.8' (half the 95% interval); 'CLIP 31.2' without an interval; 'CLIP n/a'."""
    info = metric_info(metric)
    head = f"{info.short or info.display_name} " if label else ""
    if est is None or _isnan(est.value):
        return head + "n/a"
    places = decimals(est.value)
    text = head + format_number(est.value, places)
    if est.has_interval:
        text += f" +/- {format_number(est.half_width, places)}"
    return text


def available_metrics(rows: pd.DataFrame, groups: pd.DataFrame | None) -> list[MetricInfo]:
    """Registered metrics that have at least one value in this sweep, in registry order."""
    out = []
    for info in METRICS.values():
        if from_rows(info, rows.columns):
            if pd.to_numeric(rows[info.column], errors="coerce").notna().any():
                out.append(info)
        else:
            sel = result_set(groups, info)
            if sel is not None and sel["value"].notna().any():
                out.append(info)
    return out
