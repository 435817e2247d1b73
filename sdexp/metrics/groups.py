"""Groups of images and the numbers computed per group: mean of a per-image metric with a bootstrap
interval, its paired difference against a reference group, and FID / KID against a reference.

`group_by` picks what defines a group:
- `cell` (default): one grid cell, pooled over its seeds and prompts;
- a list of axes (e.g. `[sampler, cfg]`): pooled over every other axis;
- `all`: the whole sweep as one group.

Each groups-table row carries the group's axis values: an axis column holds the value shared by every
image of the group and is blank where the group pools several values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..axes import AXES, ConfigError, swept_columns
from ..stats import bootstrap_mean_ci, paired_difference_ci
from .fid import frechet_distance, statistics
from .kid import kid
from .reference import Reference

CELL_AXES = tuple(a for a in AXES if a not in ("seed", "prompt"))
SPECIAL = ("cell", "all")


@dataclass(frozen=True)
class Grouping:
    label: str              # the groups table's `grouping` column: 'cell', 'all' or 'sampler,cfg'
    keys: tuple[str, ...]   # row columns defining a group
    axes: tuple[str, ...]   # the axes a group holds fixed (for paired matching)


def parse_grouping(group_by) -> Grouping:
    items = [group_by] if isinstance(group_by, str) else list(group_by or ["cell"])
    items = [str(i).strip() for i in items if str(i).strip()] or ["cell"]
    for item in items:
        if item not in AXES and item not in SPECIAL:
            raise ConfigError(f"group_by={item!r} is not valid; valid: cell, all, or axes among {', '.join(AXES)}")
    if len(items) > 1 and any(i in SPECIAL for i in items):
        raise ConfigError(f"group_by={items!r}: 'cell' and 'all' stand alone; valid: cell, all, or a list of axes")
    if items == ["cell"]:
        return Grouping("cell", ("cell_id",), CELL_AXES)
    if items == ["all"]:
        return Grouping("all", (), ())
    if len(set(items)) != len(items):
        raise ConfigError(f"group_by={items!r} repeats an axis")
    return Grouping(",".join(items), tuple(items), tuple(items))


def _sort_key(value):
    return (1, "") if value is None or (isinstance(value, float) and np.isnan(value)) else (0, value)


def split(rows: pd.DataFrame, grouping: Grouping) -> list[pd.DataFrame]:
    """The groups, in a fixed order (sorted by their key values)."""
    if not grouping.keys:
        return [rows]
    groups = [g for _, g in rows.groupby(list(grouping.keys), dropna=False, sort=False)]
    order = [a for a in grouping.axes if a in rows.columns] + list(grouping.keys)
    return sorted(groups, key=lambda g: tuple(_sort_key(_plain(g[k].iloc[0])) for k in order))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(group: pd.DataFrame, grouping: Grouping, swept: list[str]) -> dict:
    """Axis columns (the value when shared by the whole group, else None), cell_id and a label."""
    out: dict = {}
    for axis in AXES:
        if axis in group.columns:
            values = group[axis].dropna().unique()
            out[axis] = _plain(values[0]) if len(values) == 1 and group[axis].notna().all() else None
    cells = group["cell_id"].unique() if "cell_id" in group.columns else []
    out["cell_id"] = cells[0] if len(cells) == 1 else None
    if grouping.label == "all":
        label = "all"
    elif grouping.label == "cell":
        shown = [a for a in swept if a in CELL_AXES] or []
        label = ", ".join(f"{a}={out[a]}" for a in shown) or f"cell_id={out['cell_id']}"
    else:
        label = ", ".join(f"{a}={out.get(a)}" for a in grouping.keys)
    out["group"] = label
    return out


def swept_axes(rows: pd.DataFrame) -> list[str]:
    return swept_columns(rows)


def mean_rows(rows: pd.DataFrame, values: pd.Series, grouping: Grouping, confidence: float, n_boot: int,
              seed: int) -> list[dict]:
    """Per group: mean of the per-image values with its percentile-bootstrap interval."""
    swept = swept_axes(rows)
    out = []
    for g in split(rows, grouping):
        v = values.reindex(g["image_id"]).to_numpy(dtype=float)
        mean, low, high = bootstrap_mean_ci(v, confidence=confidence, n_boot=n_boot, seed=seed)
        n = int((~np.isnan(v)).sum())
        warning = "no value for any image of the group" if n == 0 else ("one image: no interval" if n == 1 else "")
        out.append({**describe(g, grouping, swept), "statistic": "mean", "value": mean, "ci_low": low,
                    "ci_high": high, "n": n, "confidence": confidence, "warning": warning})
    return out


def match_axes(rows: pd.DataFrame, ref: Reference) -> list[str]:
    """What pairs an image with its reference image: every axis the reference does not fix."""
    return [a for a in AXES if a in rows.columns and a not in ref.fixed]


def paired_rows(rows: pd.DataFrame, values: pd.Series, grouping: Grouping, ref: Reference, confidence: float,
                n_boot: int, seed: int) -> list[dict]:
    """Per group: mean of (group image - its reference image) over pairs matched on every axis the
    reference does not fix (for a baseline cell: the same seed and prompt), with a bootstrap interval."""
    swept = swept_axes(rows)
    keys = match_axes(rows, ref)
    base = rows[rows["image_id"].isin(set(ref.image_ids))].copy()
    base["_value"] = values.reindex(base["image_id"]).to_numpy(dtype=float)
    base_by_key = base.groupby(keys, dropna=False)["_value"].mean() if keys else None
    out = []
    for g in split(rows, grouping):
        mine = values.reindex(g["image_id"]).to_numpy(dtype=float)
        if keys:
            idx = pd.MultiIndex.from_frame(g[keys]) if len(keys) > 1 else pd.Index(g[keys[0]])
            theirs = base_by_key.reindex(idx).to_numpy(dtype=float)
        else:
            theirs = np.full(len(g), base["_value"].mean())
        mean, low, high, n = paired_difference_ci(mine, theirs, confidence=confidence, n_boot=n_boot, seed=seed)
        warning = "" if n > 1 else (f"no image matches the reference on {', '.join(keys)}" if n == 0
                                    else "one pair: no interval")
        out.append({**describe(g, grouping, swept), "statistic": "paired_diff", "value": mean, "ci_low": low,
                    "ci_high": high, "n": n, "n_reference": len(base), "confidence": confidence, "warning": warning})
    return out


def _small(metric: str, n: int, n_ref: int | None, minimum: int) -> list[str]:
    notes = []
    if n < minimum:
        notes.append(f"{metric.upper()} from N={n} images (< {metric}.min_images={minimum}) is "
                     + ("biased upward (compare FIDs only at equal N)" if metric == "fid" else "noisy"))
    if n_ref is not None and n_ref < minimum:
        notes.append(f"reference has N={n_ref} images (< {metric}.min_images={minimum})")
    return notes


def fid_rows(rows: pd.DataFrame, features: np.ndarray, grouping: Grouping, ref: Reference,
             ref_features: np.ndarray | None, min_images: int) -> list[dict]:
    """Per group: FID against the reference (features of the reference, or its stored mu and sigma)."""
    swept = swept_axes(rows)
    position = {i: k for k, i in enumerate(rows["image_id"])}
    if ref_features is not None:
        if len(ref_features) < 2:
            ref_stats = None
        else:
            ref_stats = statistics(ref_features)
    else:
        ref_stats = (ref.mu, ref.sigma)
    n_ref = None if ref_features is None else len(ref_features)
    out = []
    for g in split(rows, grouping):
        x = features[[position[i] for i in g["image_id"]]]
        notes = _small("fid", len(x), n_ref, min_images)
        if len(x) < 2 or ref_stats is None:
            value = float("nan")
            notes.insert(0, "FID needs at least 2 images on each side")
        else:
            mu, sigma = statistics(x)
            if mu.shape != ref_stats[0].shape:
                raise ConfigError(f"reference={ref.spec!r} has {ref_stats[0].shape[0]}-d statistics but the "
                                  f"features are {mu.shape[0]}-d; valid: Inception pool3 (2048-d) statistics")
            value = frechet_distance(mu, sigma, ref_stats[0], ref_stats[1], x1=x, x2=ref_features)
        out.append({**describe(g, grouping, swept), "statistic": "value", "value": value, "n": len(x),
                    "n_reference": n_ref, "warning": "; ".join(notes)})
    return out


def kid_rows(rows: pd.DataFrame, features: np.ndarray, grouping: Grouping, ref_features: np.ndarray,
             subset_size: int, subsets: int, seed: int, min_images: int) -> list[dict]:
    """Per group: KID against the reference features, the subset size adapted to min(subset_size, N, N_ref)."""
    swept = swept_axes(rows)
    position = {i: k for k, i in enumerate(rows["image_id"])}
    out = []
    for g in split(rows, grouping):
        x = features[[position[i] for i in g["image_id"]]]
        result = kid(x, ref_features, subset_size=subset_size, subsets=subsets, seed=seed)
        notes = _small("kid", len(x), len(ref_features), min_images)
        if result["subset_size"] < 2:
            notes.insert(0, "KID needs at least 2 images on each side")
        elif result["subset_size"] < subset_size:
            notes.append(f"subset size {result['subset_size']} (kid.subset_size={subset_size} > N)")
        out.append({**describe(g, grouping, swept), "statistic": "value", "value": result["value"],
                    "std": result["std"], "n": len(x), "n_reference": len(ref_features),
                    "subset_size": result["subset_size"], "warning": "; ".join(notes)})
    return out
