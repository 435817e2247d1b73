"""The interactive viewer's data: report/viewer.html reads report/data/viewer.js (one object:
the swept axes, one index per image and axis, thumbnails, per-image metrics with the estimate of
each cell, and per-group metrics (FID, KID) with the group of each image)
and, on demand, report/data/images-NNN.js (A1111 parameters and row fields of SHARD images each)
and report/data/pixels-*.js (thumbnails as data URLs, for "save view as PNG": a canvas that drew
file:// images could not be saved). Built from the rows generically: every axis column that
sdexp.axes declares and that varies is an axis of the viewer, with no list of axes here."""
from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import axes as axis_registry
from ..estimates import result_set
from ..grid import AXIS_LABELS, format_value
from ..grid_rows import plain_value
from ..metrics.groups import parse_grouping
from ..metrics.registry import METRICS
from .intervals import group_means_ci
from .tables import axis_frame, values_in_order

SHARD = 500                  # images per lazily loaded details file
PIXEL_SHARD = 250            # images per thumbnail-pixels file
SAVE_LIMIT = 20_000          # above this many images, no pixel files (saving a view is off)
ROUND = 4                    # decimals kept of metric values
DERIVED = {"width": "size", "height": "size"}   # shown through their parent axis when it varies


def label(axis: str) -> str:
    """An axis's A1111 label, from the axis registry when it offers one."""
    fn = getattr(axis_registry, "label", None)
    if fn is not None:
        try:
            return fn(axis)
        except (KeyError, ValueError):
            pass
    return AXIS_LABELS.get(axis, axis)


def swept_axes(rows: pd.DataFrame) -> list[str]:
    """The axes with more than one value, by the registry's rule when it offers one."""
    fn = getattr(axis_registry, "swept_columns", None)
    if fn is not None:
        return list(fn(axis_frame(rows)))
    out = [a for a in axis_registry.AXES if a in rows.columns and rows[a].nunique(dropna=False) > 1]
    return [a for a in out if not (a in DERIVED and DERIVED[a] in out)]


def url(path: str) -> str:
    """A path relative to the sweep folder as a URL relative to report/."""
    return quote("../" + path)


def _num(v):
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else round(f, ROUND)


def _text(v) -> str:
    """A text cell of a table: missing (None or NaN) is the empty string."""
    return v if isinstance(v, str) else ""


def _js(name: str, *args) -> bytes:
    body = ",".join(json.dumps(a, separators=(",", ":"), allow_nan=False) for a in args)
    return f"{name}({body});\n".encode()


def _column(rows: pd.DataFrame, column: str) -> list:
    return [plain_value(v) for v in rows[column].tolist()]


def axis_indices(rows: pd.DataFrame, axes: list[str]) -> tuple[list[dict], dict]:
    """Each axis with its ordered values, and each image's index into them."""
    meta, index = [], {}
    for a in axes:
        values = values_in_order(rows[a])
        lookup = {v: i for i, v in enumerate(values)}
        index[a] = [lookup[v] for v in _column(rows, a)]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
        meta.append({"key": a, "label": label(a), "values": [format_value(v) for v in values],
                     "numeric": numeric})
    return meta, index


def _image_metric_series(folder: Path, rows: pd.DataFrame) -> list[tuple[dict, list]]:
    """(metric entry, per-image values) for every per-image metric with a value: rows columns, then
    the image_metrics table (one entry per metric and scoring model not already in the rows)."""
    out = []
    for info in METRICS.values():
        if info.per == "image" and info.column in rows.columns:
            values = pd.to_numeric(rows[info.column], errors="coerce")
            if values.notna().any():
                out.append(({"name": info.name, "label": info.display_name, "short": info.short or info.display_name,
                             "higher": info.higher_is_better, "per": "image"}, values.tolist()))
    parts = sorted((folder / "image_metrics").glob("*.parquet"))
    if parts:
        table = pd.concat([pd.read_parquet(p, columns=["image_id", "metric", "scorer", "value"]) for p in parts])
        in_rows = {(e["name"], s) for e, _ in out for s in
                   (rows["clip_model"].dropna().unique() if "clip_model" in rows.columns else [])}
        for (metric, scorer), sel in table.groupby(["metric", "scorer"], sort=True):
            info = METRICS.get(metric)
            if info is None or (metric, scorer) in in_rows:
                continue
            values = pd.to_numeric(rows["image_id"].map(dict(zip(sel["image_id"], sel["value"]))), errors="coerce")
            if info.column in rows.columns and np.allclose(values, pd.to_numeric(rows[info.column], errors="coerce"),
                                                           equal_nan=True):
                continue                   # the rows' own values, stored again by `sdexp score`
            out.append(({"name": f"{metric}:{scorer}", "label": f"{info.display_name} ({scorer})",
                         "short": info.short or info.display_name, "higher": info.higher_is_better,
                         "per": "image"}, values.tolist()))
    return out


def _group_metric_entries(groups: pd.DataFrame | None, rows: pd.DataFrame) -> list[dict]:
    """FID, KID and other per-group metrics: one entry per result set's grouping ('cell', 'all' or
    axes such as 'cfg,steps'), its groups as rows [value, low, high, n, warning, group] and, per
    image, the index of the group it belongs to (-1: none)."""
    out = []
    for info in METRICS.values():
        sel = result_set(groups, info) if info.per == "group" else None
        if sel is None:
            continue
        if "grouping" not in sel.columns:
            sel = sel.assign(grouping="cell")
        for grouping, part in sel.groupby(sel["grouping"].fillna("cell"), sort=True):
            keys = list(parse_grouping(str(grouping).split(",")).keys)
            if not set(keys) <= set(rows.columns) & set(part.columns):
                continue
            records = [r for r in part.to_dict("records") if _num(r.get("value")) is not None]
            where = {tuple(plain_value(r[k]) for k in keys): k for k, r in enumerate(records)}
            image_keys = zip(*[_column(rows, k) for k in keys]) if keys else [()] * len(rows)
            at = [where.get(tuple(key), -1) for key in image_keys]
            if not records or max(at, default=-1) < 0:
                continue
            ref = part["reference"].dropna() if "reference" in part.columns else pd.Series([], dtype=object)
            by = "" if grouping == "cell" else " (all images)" if grouping == "all" else \
                " by " + ", ".join(label(k) for k in keys)
            out.append({"name": info.name if grouping == "cell" else f"{info.name}@{grouping}",
                        "label": info.display_name + by, "short": info.short or info.display_name,
                        "higher": info.higher_is_better, "per": "group", "grouping": str(grouping),
                        "rows": [[_num(r.get("value")), _num(r.get("ci_low")), _num(r.get("ci_high")),
                                  int(r["n"]) if _num(r.get("n")) is not None else None, _text(r.get("warning")),
                                  _text(r.get("group"))] for r in records],
                        "at": at, "reference": str(ref.iloc[0]) if len(ref) else None})
    return out


def viewer_data(folder: Path, rows: pd.DataFrame, groups: pd.DataFrame | None, facts: pd.DataFrame,
                grid: dict | None) -> dict:
    """The viewer's main data object (see the module docstring); `facts` from images.image_facts."""
    axes = swept_axes(rows)
    meta, index = axis_indices(rows, axes)
    n = len(rows)
    others = [a for a in axes if a != "seed"]
    if others:
        keys = pd.MultiIndex.from_arrays([index[a] for a in others])
        group = pd.factorize(keys)[0]
    else:
        group = np.zeros(n, dtype=np.int64)
    n_groups = int(group.max()) + 1 if n else 0
    flags = (rows["image_flags"].fillna("").astype(str).tolist() if "image_flags" in rows.columns else [""] * n)
    healthy = np.array([not f for f in flags])
    metrics = []
    for entry, values in _image_metric_series(folder, rows):
        vals = np.asarray(values, dtype=float)
        stats = group_means_ci(np.where(healthy, vals, np.nan), group, n_groups)
        entry["image"] = [_num(v) for v in vals]
        entry["groups"] = [[_num(v) for v in row[:3]] + [int(row[3])] for row in stats]
        metrics.append(entry)
    metrics += _group_metric_entries(groups, rows)
    thumbs = facts["thumb"].tolist()
    paths = rows["image_path"].tolist() if "image_path" in rows.columns else [None] * n
    constant = {c: format_value(plain_value(rows[c].iloc[0])) for c in rows.columns
                if n and rows[c].nunique(dropna=False) <= 1}
    default = {"x": None, "y": None, "xs": None, "ys": None, "seed": "first", "metric": None}
    if grid:
        default.update({"x": grid.get("x"), "y": grid.get("y"), "ys": grid.get("z"),
                        "seed": str(grid.get("seed", "first")), "metric": grid.get("metric")})
    default = {k: (v if k in ("seed", "metric") or v in axes else None) for k, v in default.items()}
    return {
        "name": format_value(rows["sweep"].iloc[0]) if "sweep" in rows.columns and n else folder.name,
        "n": n, "axes": meta, "index": index, "group": group.tolist(), "imageId": rows["image_id"].tolist(),
        "full": [url(p) if p else None for p in paths],
        "thumb": [None if t == p or not isinstance(t, str) else url(t) for t, p in zip(thumbs, paths)],
        "w": [int(w) if _num(w) is not None else None for w in facts["width"].tolist()],
        "h": [int(h) if _num(h) is not None else None for h in facts["height"].tolist()],
        "flags": flags if any(flags) else None,
        "metrics": metrics, "constant": constant, "default": default,
        "shard": SHARD, "pixelShard": PIXEL_SHARD if n <= SAVE_LIMIT else 0,
    }


def formatted(column: pd.Series) -> list[str]:
    """format_value of every value of a column (strings as they are, missing ones 'None')."""
    if pd.api.types.is_string_dtype(column) or column.dtype == object:
        values = column.to_numpy(dtype=object, na_value=None)
        if all(isinstance(v, str) or v is None for v in values):
            return ["None" if v is None else v for v in values]
    return [format_value(plain_value(v)) for v in column.to_numpy(dtype=object)]


def detail_shards(rows: pd.DataFrame, facts: pd.DataFrame) -> list[bytes]:
    """The images-NNN.js files: per image its A1111 parameters text and its row's varying fields."""
    varying = [c for c in rows.columns if rows[c].nunique(dropna=False) > 1]
    columns = [formatted(rows[c]) for c in varying]
    records = [dict(zip(varying, r)) for r in zip(*columns)] if varying else [{} for _ in range(len(rows))]
    params = facts["parameters"].where(facts["parameters"].notna(), None).tolist()
    out = []
    for k, start in enumerate(range(0, len(rows), SHARD)):
        part = [{"p": p, "f": f} for p, f in zip(params[start:start + SHARD], records[start:start + SHARD])]
        out.append(_js("sdexpViewer.details", k, part))
    return out


def pixel_shards(folder: Path, facts: pd.DataFrame) -> list[tuple[str, bytes | None]]:
    """(file name, content) of each pixels-*.js file: thumbnails as data URLs. The name carries a
    digest of the thumbnails it holds, so an unchanged file is kept and not read again (content None)."""
    out = []
    thumbs = facts["thumb"].tolist()
    for k, start in enumerate(range(0, len(thumbs), PIXEL_SHARD)):
        part = thumbs[start:start + PIXEL_SHARD]
        digest = hashlib.sha256(json.dumps([str(t) for t in part]).encode()).hexdigest()[:12]
        name = f"pixels-{k:04d}-{digest}.js"

        def content(part=part, k=k):
            urls = []
            for t in part:
                path = folder / t if isinstance(t, str) else None
                if path is None or not path.exists():
                    urls.append(None)
                    continue
                kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower().lstrip(".")
                urls.append(f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode())
            return _js("sdexpViewer.pixels", k, urls)

        out.append((name, content))
    return out


def write_viewer(folder: Path, rows: pd.DataFrame, groups: pd.DataFrame | None, facts: pd.DataFrame,
                 grid: dict | None, report: Path, writer, render_page) -> Path:
    """Write report/viewer.html and report/data/*.js; returns the page."""
    data = viewer_data(folder, rows, groups, facts, grid)
    pixels = pixel_shards(folder, facts) if data["pixelShard"] else []
    data["pixelFiles"] = [name for name, _ in pixels]
    out = report / "data"
    writer.bytes(out / "viewer.js", _js("sdexpViewer.load", data))
    for k, content in enumerate(detail_shards(rows, facts)):
        writer.bytes(out / f"images-{k:04d}.js", content)
    for name, content in pixels:
        path = out / name
        if path.exists():
            writer.keep(path)
        else:
            writer.bytes(path, content())
    return writer.bytes(report / "viewer.html", render_page("viewer.html.j2", {"name": data["name"]}).encode())
