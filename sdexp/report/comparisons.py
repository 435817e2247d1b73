"""The report's comparisons: every cell against a baseline cell (paired on seed and prompt), the
metrics broken down per prompt, and every result set of groups/ (FID and KID with their N and
warnings) as `sdexp score` stored it. Intervals are the percentile bootstrap of sdexp.stats,
computed for all cells at once (report.intervals)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..estimates import decimals, format_number, from_rows
from ..grid import format_value
from ..grid_rows import plain_value
from ..metrics.registry import METRICS, MetricInfo
from .intervals import group_means_ci
from .tables import flagged, values_in_order

PAIR_KEYS = ("prompt", "seed")      # a cell pairs with the baseline on what a cell pools
MAX_ROWS = 200                      # rows of a groups result set or the prompt table shown in the page


def _healthy(rows: pd.DataFrame) -> pd.Series:
    return ~flagged(rows)


def baseline_cell(table, rows: pd.DataFrame, given: str | None = None):
    """The baseline: the cell named by `given` (a cell id or a unique prefix), else the cell with the
    first value of every axis that tells cells apart, else the table's first cell."""
    if not table.cells:
        return None
    if given:
        hits = [c for c in table.cells if c.cell_id.startswith(given)]
        return hits[0] if len(hits) == 1 else None
    first = {a: values_in_order(rows[a])[0] for a in table.axes}
    for c in table.cells:
        if all(c.settings.get(a) == first[a] for a in table.axes):
            return c
    return table.cells[0]


def paired_differences(rows: pd.DataFrame, table, metrics: list[MetricInfo], base) -> dict:
    """{metric: {cell_id: (mean, low, high, n)}}: each cell's images minus the baseline's image of the
    same prompt and seed, flagged images left out."""
    if base is None or "cell_id" not in rows.columns:
        return {}
    keys = [k for k in PAIR_KEYS if k in rows.columns]
    ok = _healthy(rows)
    cell_ids = [c.cell_id for c in table.cells]
    position = {c: i for i, c in enumerate(cell_ids)}
    group = rows["cell_id"].astype(str).map(position)
    out = {}
    for info in metrics:
        if not from_rows(info, rows.columns):
            continue
        values = pd.to_numeric(rows[info.column], errors="coerce").where(ok)
        ref = rows[rows["cell_id"].astype(str) == base.cell_id]
        if keys:
            lookup = pd.Series(values[ref.index].to_numpy(),
                               index=pd.MultiIndex.from_frame(ref[keys].astype(object).map(plain_value))
                               if len(keys) > 1 else ref[keys[0]].map(plain_value))
            lookup = lookup[~lookup.index.duplicated()]
            key = (pd.MultiIndex.from_frame(rows[keys].astype(object).map(plain_value)) if len(keys) > 1
                   else rows[keys[0]].map(plain_value))
            matched = lookup.reindex(key).to_numpy()
        else:
            matched = np.full(len(rows), values[ref.index].mean())
        diff = values.to_numpy() - matched
        valid = group.notna().to_numpy()
        stats = group_means_ci(diff[valid], group[valid].astype(int).to_numpy(), len(cell_ids))
        out[info.name] = {cid: tuple(stats[i]) for i, cid in enumerate(cell_ids)}
    return out


def _num(value: float, places: int | None = None) -> str:
    return "n/a" if value is None or np.isnan(value) else format_number(value, places)


def diff_cells(diffs: dict, metrics: list[MetricInfo], cell_id: str, is_base: bool) -> list[dict]:
    """The paired-difference columns of one row of the cells table."""
    out = []
    for info in metrics:
        if info.name not in diffs:
            continue
        mean, low, high, n = diffs[info.name].get(cell_id, (np.nan,) * 4)
        if is_base:
            out.append({"value": "baseline", "interval": "", "sort": "0", "n": ""})
            continue
        places = decimals(abs(mean)) if not np.isnan(mean) else None
        text = ("+" if mean > 0 else "") + _num(mean, places)
        interval = (f"[{_num(low, places)}, {_num(high, places)}]" if not np.isnan(low) else "")
        out.append({"value": text, "interval": interval, "sort": "" if np.isnan(mean) else repr(float(mean)),
                    "n": "" if np.isnan(n) else str(int(n)),
                    "clear": bool(not np.isnan(low) and (low > 0 or high < 0))})
    return out


def prompt_breakdown(rows: pd.DataFrame, metrics: list[MetricInfo]) -> dict:
    """Per prompt: images and each per-image metric's mean with its interval, pooled over cells."""
    if "prompt" not in rows.columns:
        return {"metrics": [], "rows": [], "total": 0}
    shown = [m for m in metrics if from_rows(m, rows.columns)]
    prompts = values_in_order(rows["prompt"])
    position = {p: i for i, p in enumerate(prompts)}
    group = rows["prompt"].map(plain_value).map(position).to_numpy()
    ok = _healthy(rows).to_numpy()
    stats = {m.name: group_means_ci(np.where(ok, pd.to_numeric(rows[m.column], errors="coerce"), np.nan),
                                    group, len(prompts)) for m in shown}
    counts = np.bincount(group, minlength=len(prompts))
    out = []
    for i, p in enumerate(prompts[:MAX_ROWS]):
        cells = []
        for m in shown:
            mean, low, high, _ = stats[m.name][i]
            places = decimals(mean) if not np.isnan(mean) else None
            cells.append({"value": _num(mean, places),
                          "interval": f"[{_num(low, places)}, {_num(high, places)}]" if not np.isnan(low) else ""})
        out.append({"index": i + 1, "prompt": format_value(p), "n": int(counts[i]), "metrics": cells})
    return {"metrics": [m.display_name for m in shown], "rows": out, "total": len(prompts)}


GROUP_COLUMNS = ("value", "ci_low", "ci_high", "n", "n_reference", "subset_size")


def group_sets(groups: pd.DataFrame | None) -> list[dict]:
    """Every result set of the groups table: (metric, statistic, grouping, reference) with its rows."""
    if groups is None or groups.empty:
        return []
    keys = [k for k in ("metric", "statistic", "grouping", "reference") if k in groups.columns]
    out = []
    for key, sel in groups.groupby(keys, dropna=False, sort=True):
        meta = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        info = METRICS.get(meta.get("metric"))
        rows = []
        for r in sel.head(MAX_ROWS).to_dict("records"):
            value = r.get("value")
            places = decimals(value) if value is not None and not pd.isna(value) else None
            ci = (f"[{_num(r.get('ci_low'), places)}, {_num(r.get('ci_high'), places)}]"
                  if r.get("ci_low") is not None and not pd.isna(r.get("ci_low")) else "")
            rows.append({"group": format_value(r.get("group")) if r.get("group") is not None else "",
                         "cell_id": format_value(r.get("cell_id"))[:10] if r.get("cell_id") else "",
                         "value": _num(value, places), "interval": ci,
                         "n": "" if pd.isna(r.get("n")) else str(int(r["n"])),
                         "n_reference": "" if pd.isna(r.get("n_reference", np.nan)) else str(int(r["n_reference"])),
                         "warning": r.get("warning") or ""})
        label = info.display_name if info else str(meta.get("metric"))
        statistic = {"value": "", "mean": "mean", "paired_diff": "paired difference"}.get(
            meta.get("statistic"), str(meta.get("statistic") or ""))
        direction = (" (higher is better)" if info.higher_is_better else " (lower is better)") if info else ""
        title = " ".join(t for t in (label, statistic) if t) + direction
        ref = meta.get("reference")
        out.append({"title": title, "grouping": format_value(meta.get("grouping")) if "grouping" in meta else "",
                    "reference": "" if ref is None or pd.isna(ref) else str(ref), "rows": rows,
                    "total": len(sel), "warnings": int((sel["warning"].fillna("") != "").sum())
                    if "warning" in sel.columns else 0})
    return out
