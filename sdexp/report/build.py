"""Build results/<name>/report/: index.html, its CSS and JS, thumbnails, plots and cells.csv,
from the store alone. Opens offline: every file it refers to is in the sweep folder."""
from __future__ import annotations

import io
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from PIL import Image

from ..axes import ConfigError
from ..estimates import decimals, format_number, read_groups
from ..grid import DEFAULT_MAX_PIXELS, AXIS_LABELS, axis_label
from ..grid_rows import GridPage, drop_stale_grids, render_grids
from ..store import TMP_SUFFIX, atomic_write_bytes, load_rows
from .html import ASSETS, render, render_index
from .images import image_facts
from .options import grid_options
from .plots import make_plots
from .summary import summarize
from .cells_view import cells_js, cells_view, direction
from .comparisons import baseline_cell, group_sets, prompt_breakdown
from .tables import cell_table, table_frame
from .viewer import write_viewer

GRID_THUMB_WIDTH = 1600    # grids wider than this are shown downscaled; a click opens the original
OWNED = ("assets", "thumbs", "plots", "data")   # report/ subfolders rebuilt (stale files removed) each time


class Writer:
    """Writes report files atomically and remembers them, so stale ones can be removed."""

    def __init__(self, root: Path):
        self.root = root
        self.written: set[Path] = set()

    def bytes(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        return self.keep(path)

    def keep(self, path: Path) -> Path:
        self.written.add(path.resolve())
        return path

    def prune(self) -> None:
        for sub in OWNED:
            for p in sorted((self.root / sub).rglob("*"), reverse=True):
                if p.is_file() and p.resolve() not in self.written:
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()


def href(path: Path, start: Path) -> str:
    """A relative URL from the report folder to a file (quoted, forward slashes)."""
    return quote(Path(os.path.relpath(path, start)).as_posix())


def _fresh(thumb: Path, source: Path) -> bool:
    return thumb.exists() and thumb.stat().st_mtime >= source.stat().st_mtime


def _thumbnail(writer: Writer, source: Path, thumb: Path, box: tuple[int, int], fmt: str) -> tuple[int, int]:
    """Write a downscaled copy (never upscaled); returns its size. Reuses an up-to-date one."""
    if _fresh(thumb, source):
        writer.keep(thumb)
        with Image.open(thumb) as im:
            return im.size
    thumb.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as im:
        if im.width <= box[0] and im.height <= box[1] and fmt == "PNG" and source.suffix.lower() == ".png":
            tmp = thumb.with_name(f".{thumb.name}{TMP_SUFFIX}")
            shutil.copyfile(source, tmp)
            os.replace(tmp, thumb)
            writer.keep(thumb)
            return im.size
        img = im.convert("RGB")
    img.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    writer.bytes(thumb, buf.getvalue())
    return img.size


def _grid_views(writer: Writer, report: Path, grids: list[GridPage]) -> list[dict]:
    views = []
    for g in grids:
        heading = g.title or "All cells"
        if g.pages > 1:
            heading += f" (page {g.page}/{g.pages})"
        thumb = report / "thumbs" / "grids" / g.path.name
        w, h = _thumbnail(writer, g.path, thumb, (GRID_THUMB_WIDTH, 1 << 20), "PNG")
        with Image.open(g.path) as im:
            full = im.size
        names = [f"{k.upper()}: {AXIS_LABELS[a]}" for k, a in zip("xyz", g.axes) if a]
        views.append({"heading": heading, "href": href(g.path, report), "thumb": href(thumb, report),
                      "width": w, "height": h,
                      "caption": f"{', '.join(names)}. {g.path.name}, {full[0]} x {full[1]} px"})
    return views


def _best_view(table, groups) -> list[dict]:
    out = []
    for m in table.metrics:
        cell = table.best.get(m.name)
        if cell is None:
            continue
        est = cell.estimates[m.name]
        places = decimals(est.value)
        out.append({
            "metric": m.display_name,
            "direction": direction(m, groups),
            "value": format_number(est.value, places),
            "interval": (f"[{format_number(est.low, places)}, {format_number(est.high, places)}]"
                         if est.has_interval else ""),
            "settings": ", ".join(axis_label(a, v) for a, v in cell.settings.items()),
        })
    return out


def build_report(folder: Path | str, grid: dict | None = None, grids: list[GridPage] | None = None,
                 overrides: list[str] = (), log=print, rows: pd.DataFrame | None = None,
                 groups: pd.DataFrame | None = None, baseline: str | None = None) -> Path:
    """Write results/<name>/report/ and return its index.html.

    grid: the grid options (x, y, z, seed, metric, max_pixels); by default the sweep's stored
    ones with `overrides` ("grid.x=cfg") on top. grids: pages already drawn (a sweep passes
    the ones it just drew); by default the grids are drawn again from the rows.
    rows, groups: the store's tables when the caller has just read them; by default read here.
    baseline: the cell (id or unique prefix) the paired comparisons are against; by default the
    cell with the first value of every swept axis."""
    folder = Path(folder)
    if rows is None:
        rows, groups = load_rows(folder), read_groups(folder)
    if rows.empty:
        raise ConfigError(f"{folder} holds no rows yet; render a sweep into it first")
    if grid is None:
        grid = grid_options(folder, rows, list(overrides))
    if grids is None:
        grids = [] if grid.get("x") is None else render_grids(
            rows, folder, folder / "grids", grid["x"], grid.get("y"), grid.get("z"),
            seed=grid.get("seed", "first"), metric=grid.get("metric"), groups=groups,
            max_pixels=grid.get("max_pixels", DEFAULT_MAX_PIXELS))
        drop_stale_grids(folder / "grids", grids)
    report = folder / "report"
    report.mkdir(parents=True, exist_ok=True)
    writer = Writer(report)
    for asset in sorted(ASSETS.iterdir()):
        if asset.is_dir():           # a script kept in parts (assets/viewer/*.js): joined in name order
            data = b"".join(part.read_bytes() for part in sorted(asset.glob("*.js")))
            writer.bytes(report / "assets" / f"{asset.name}.js", data)
        else:
            writer.bytes(report / "assets" / asset.name, asset.read_bytes())

    images = image_facts(folder, rows, report, writer.keep)
    viewer = write_viewer(folder, rows, groups, images, grid, report, writer, render)
    table = cell_table(rows, groups)
    base = baseline_cell(table, rows, baseline)
    if baseline and base is None:
        raise ConfigError(f"baseline={baseline!r} names no single cell; valid: a cell id (or a unique prefix) "
                          f"of cells.csv, e.g. {table.cells[0].cell_id}")
    cells = cells_view(table, rows, groups, images, base)
    writer.bytes(report / "data" / "cells.js", cells_js(cells))
    plots = make_plots(rows, groups, table.metrics, grid, report / "plots", writer.bytes)
    csv = table_frame(table).to_csv(index=False).encode()
    writer.bytes(report / "cells.csv", csv)

    summary = summarize(rows, folder, grid)
    axes_line = ", ".join(f"{k.upper()}: {AXIS_LABELS[grid[k]]}" for k in "xyz" if grid.get(k))
    if axes_line and grid.get("metric"):
        axes_line += f"; under each cell: {grid['metric']}"
    facts = dict(summary["facts"])
    context = {
        "s": summary,
        "facts_line": " \u00b7 ".join(f"{v} {k.split(' ')[0].lower()}" for k, v in facts.items()
                                      if k in ("Images", "Prompts")),
        "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "folder": str(folder),
        "best": _best_view(table, groups),
        "grid_axes": axes_line,
        "grids": _grid_views(writer, report, grids),
        "table": cells,
        "prompts": prompt_breakdown(rows, table.metrics),
        "group_sets": group_sets(groups),
        "plots": [{"src": href(p.path, report), "title": p.title} for p in plots],
        "viewer": href(viewer, report),
    }
    index = writer.bytes(report / "index.html", render_index(context).encode())
    writer.prune()
    return index

