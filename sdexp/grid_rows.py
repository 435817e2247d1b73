"""Grids from stored rows: one PNG per combination of the other swept axes (sdexp.grid draws them).

A cell shows its first seed or all of them as a strip (each captioned "Seed: N"), then optionally a
metric line ("CLIP 31.2 +/- 0.8"); a grid over `max_pixels` is split into pages.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from .axes import AXIS_LABELS, DERIVED
from .axis_values import map_distinct
from .grid import (DEFAULT_MAX_PIXELS, MAX_NAME, STRIP_SHARE, _check_axis, axis_label, caption, caption_height, draw_xyz, format_value, grid_layout, hstack)
from .image_health import flag_note


def plain_value(v):
    """A numpy scalar as a Python one; NaN as None."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def plain_records(rows: pd.DataFrame) -> list[dict]:
    """Rows as dicts of plain Python values (plain_value of each), column by column: each distinct
    value of a column is converted once."""
    columns = [map_distinct(plain_value, rows[name].tolist()) for name in rows.columns]
    return [dict(zip(rows.columns, vals)) for vals in zip(*columns)]


def ordered_values(values) -> list:
    """Distinct values: numeric ones sorted, others by first appearance; None last."""
    if hasattr(values, "unique"):         # a column: its distinct values, in order of appearance, first
        values = values.unique()
    distinct = list(dict.fromkeys(plain_value(v) for v in values))
    present = [v for v in distinct if v is not None]
    tail = [None] if None in distinct else []
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in present):
        present.sort()
    return present + tail


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.\-]+", "_", text.lower()).strip("_.") or "_"


def _names(x, y, z, extra: list[str], combos: list[tuple]) -> list[str]:
    head = f"grid-{x}-x" + (f"-{y}-y" if y else "") + (f"-{z}-z" if z else "")
    stems = [head + "".join(f"-{a}_{_slug(format_value(v))}" for a, v in zip(extra, c))
             for c in combos]
    counts = {s: stems.count(s) for s in stems}
    names = []
    for stem, combo in zip(stems, combos):
        if len(stem) > MAX_NAME or counts[stem] > 1:
            key = repr((head, [(a, format_value(v)) for a, v in zip(extra, combo)]))
            stem = stem[:MAX_NAME].rstrip("_-.") + "-" + hashlib.sha1(key.encode()).hexdigest()[:8]
        names.append(stem + ".png")
    return names


def drop_stale_grids(folder: Path, pages: list) -> None:
    """Remove grid files of an earlier layout from `folder`: derived files that would contradict `pages`."""
    drawn = {g.path.resolve() for g in pages}
    for old in Path(folder).glob("grid-*.png"):
        if old.resolve() not in drawn:
            old.unlink()


def _file_mode() -> int:
    """The mode a plain new file gets under this process's umask (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _save_atomic(image: Image.Image, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    try:
        os.fchmod(fd, _file_mode())     # grids are read like the images beside them
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class GridPage:
    """One written grid file: a combination of the other swept axes, maybe one page of several."""
    path: Path
    title: str | None            # the combination of the other axes ("Clip skip: 2, Prompt: ..."), no page
    combo: tuple                 # ((axis, value), ...) of the other swept axes
    axes: tuple                  # (x, y, z), None where absent
    page: int = 1
    pages: int = 1


SEED_CHOICES = "'first', 'all' (every seed of a cell, side by side) or an int seed"


def build_grids(rows: pd.DataFrame, root: Path, out_dir: Path, x: str, y: str | None = None,
                z: str | None = None, seed="first", metric=None, groups: pd.DataFrame | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Path]:
    """Write the grids (see render_grids) and return their paths."""
    return [g.path for g in render_grids(rows, root, out_dir, x, y, z, seed=seed, metric=metric,
                                         groups=groups, max_pixels=max_pixels)]


def render_grids(rows: pd.DataFrame, root: Path, out_dir: Path, x: str, y: str | None = None,
                 z: str | None = None, seed="first", metric=None, groups: pd.DataFrame | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> list[GridPage]:
    """Write one PNG grid per combination of the other varying axes.

    seed: what a cell shows: the image of its smallest seed ("first"), of a given seed (an int;
    cells without it stay blank), or of every seed side by side ("all": a strip, at most
    max_pixels / STRIP_SHARE pixels long), each captioned "Seed: N" unless seed is an axis.
    metric: a metric name (sdexp.metrics.registry) written under each cell, e.g.
    "CLIP 31.2 +/- 0.8" (mean over the cell's images and half its 95% interval); per-group
    metrics come from `groups`. Nothing is written when the metric has no value in any cell.
    max_pixels: a grid larger than this is split into pages (whole Z sub-grids, else row
    blocks, else column blocks) instead of written as one huge file.
    """
    for key, axis in (("x", x), ("y", y), ("z", z)):
        if axis is not None or key == "x":
            _check_axis(key, axis, rows.columns)
    axes = [a for a in (x, y, z) if a is not None]
    if len(set(axes)) != len(axes):
        raise ValueError(f"x, y and z must be different axes, got x={x!r}, y={y!r}, z={z!r}")
    seed_is_int = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
    if not (seed in ("first", "all") or seed_is_int) or (seed_is_int and "seed" in axes):
        raise ValueError(f"seed={seed!r} is not valid; valid choices: {SEED_CHOICES}"
                         + (" (an int only when seed is not an axis)" if "seed" in axes else ""))
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
        raise ValueError(f"max_pixels={max_pixels!r} is not valid; valid: an integer >= 1")
    info = None
    if metric is not None:
        from .estimates import metric_info
        info = metric_info(metric)
    if rows.empty:
        return []
    root, out_dir = Path(root), Path(out_dir)

    def varies(a):
        return a in rows.columns and rows[a].nunique(dropna=False) > 1

    size_extra = varies("size") and "size" not in axes and not {"width", "height"} & set(axes)
    shown = {"size": "size" in axes or size_extra, "prompt_sr": "prompt_sr" in axes or varies("prompt_sr")}
    extra = [a for a in AXIS_LABELS if varies(a) and a not in axes and a != "seed"
             and not (a in DERIVED and shown[DERIVED[a]])
             and not (a == "prompt_template" and not shown["prompt_sr"])
             and not (a == "size" and not size_extra)
             and not (a in ("steps", "cfg") and _follows(rows, a, axes))]
    order = {a: ordered_values(rows[a]) for a in axes + extra}
    used = [*axes, *extra, "seed", "image_path", "image_flags", *([info.column] if info and info.column else [])]
    records = plain_records(rows[[c for c in dict.fromkeys(used) if c in rows.columns]])

    groups_by: dict[tuple, list[dict]] = {}
    for rec in records:
        groups_by.setdefault(tuple(rec[a] for a in extra), []).append(rec)
    combos = [c for c in itertools.product(*(order[a] for a in extra)) if c in groups_by]

    xs = order[x]
    ys = order[y] if y else [None]
    zs = order[z] if z else [None]
    captioned = "seed" not in axes and "seed" in rows.columns
    out_dir.mkdir(parents=True, exist_ok=True)
    out: list[GridPage] = []
    for combo, name in zip(combos, _names(x, y, z, extra, combos)):
        cells: dict[tuple, list[dict]] = {}
        for rec in groups_by[combo]:
            if rec.get("image_path") is None or not (root / rec["image_path"]).is_file():
                continue          # a missing image leaves its cell empty (`sdexp verify` names it)
            key = (rec[x], rec[y] if y else None, rec[z] if z else None)
            cells.setdefault(key, []).append(rec)
        texts = _metric_texts(cells, info, groups, dict(zip(extra, combo)), (x, y, z))
        plans = {}
        for key, recs in cells.items():
            chosen = _chosen(recs, seed, "seed" not in axes)
            if chosen:
                note = "\n".join(t for t in (texts.get(key), flag_note(recs)) if t) or None   # image health
                plans[key] = _CellPlan(root, chosen, captioned, note, len(recs), max_pixels)
        title = ", ".join(axis_label(a, v) for a, v in zip(extra, combo)) or None
        cell_size = (max(p.size[0] for p in plans.values()), max(p.size[1] for p in plans.values())) \
            if plans else (64, 64)
        pages = split_pages(cell_size, xs, ys, zs, x, y, z, title, max_pixels)
        stem = name[:-len(".png")]
        for i, (px, py, pz) in enumerate(pages, 1):
            many = len(pages) > 1
            path = out_dir / (f"{stem}-page-{i}-of-{len(pages)}.png" if many else name)
            page_title = _page_title(title, i, len(pages)) if many else title
            images = {k: plans[k].draw() for k in itertools.product(px, py, pz) if k in plans}
            _save_atomic(draw_xyz(images, px, py if y else None, pz if z else None, x, y, z,
                                  page_title, cell_size=cell_size), path)
            out.append(GridPage(path, title, tuple(zip(extra, combo)), (x, y, z), i, len(pages)))
    return out


def _follows(rows: pd.DataFrame, axis: str, axes: list[str]) -> bool:
    """True when the grid's axes set `axis` (LCM's steps and CFG follow the sampler): no split needed."""
    return bool((rows.groupby(axes, dropna=False)[axis].nunique(dropna=False) <= 1).all())


def _page_title(title: str | None, page: int, pages: int) -> str:
    return (f"{title} " if title else "") + f"(page {page}/{pages})"


def _chosen(recs: list[dict], seed, choose: bool) -> list[dict]:
    """The records a cell shows, in seed order."""
    if not choose or "seed" not in recs[0]:
        return recs[:1]
    with_seed = sorted((r for r in recs if r["seed"] is not None), key=lambda r: r["seed"])
    if seed == "first":
        return with_seed[:1] or recs[:1]
    if seed == "all":
        return with_seed or recs[:1]
    return [r for r in recs if r["seed"] == seed][:1]


def _metric_texts(cells: dict, info, groups, combo: dict, axes: tuple) -> dict:
    """The caption of each cell for this metric; empty when no cell has a value."""
    if info is None:
        return {}
    from .estimates import estimate, format_estimate

    ests = {}
    for key, recs in cells.items():
        where = {**combo, **{a: v for a, v in zip(axes, key) if a is not None}}
        ests[key] = estimate(info, recs, where, groups)
    if all(e is None for e in ests.values()):
        return {}
    return {key: format_estimate(info, e) for key, e in ests.items()}


class _CellPlan:
    """What one cell shows: its images (with seed captions) side by side, then the metric line.
    The size is known before any pixel is read, so pages are planned without loading images."""

    def __init__(self, root: Path, recs: list[dict], seed_captions: bool, metric_text: str | None,
                 n_images: int, max_pixels: int):
        self.root = root
        sizes = []
        for rec in recs:
            with Image.open(root / rec["image_path"]) as im:
                sizes.append(im.size)
        w, h = max(s[0] for s in sizes), max(s[1] for s in sizes)
        keep = max(1, max_pixels // (STRIP_SHARE * w * h))     # strip guard
        self.recs, self.sizes = recs[:keep], sizes[:keep]
        self.seed_captions = seed_captions and all(r.get("seed") is not None for r in self.recs)
        lines = [metric_text] if metric_text else []
        if len(recs) > keep:
            lines.append(f"first {keep} of {len(recs)} seeds")
        self.footer = "\n".join(lines) or None
        self.ref = (w, h)
        width = sum(s[0] for s in self.sizes)
        height = max(s[1] + (caption_height(s[0], s[1], axis_label("seed", r["seed"]))
                             if self.seed_captions else 0) for s, r in zip(self.sizes, self.recs))
        if self.footer:
            height += caption_height(width, height, self.footer, self.ref)
        self.size = (width, height)

    def draw(self) -> Image.Image:
        parts = []
        for rec in self.recs:
            with Image.open(self.root / rec["image_path"]) as im:
                img = im.convert("RGB")
            if self.seed_captions:
                img = caption(img, axis_label("seed", rec["seed"]))
            parts.append(img)
        img = parts[0] if len(parts) == 1 else hstack(parts)
        if self.footer:
            img = caption(img, self.footer, self.ref)
        return img


def split_pages(cell_size: tuple[int, int], xs: list, ys: list, zs: list, x: str, y: str | None,
                z: str | None, title: str | None, max_pixels: int) -> list[tuple[list, list, list]]:
    """(xs, ys, zs) of each page so that no page exceeds max_pixels: the whole grid when it fits,
    else as many whole Z sub-grids per page as fit, else blocks of rows of one sub-grid, else
    blocks of columns of one row. A single cell larger than max_pixels still gets its own page."""

    def area(px, py, pz, t):
        w, h = grid_layout(cell_size, px, py if y else None, pz if z else None, x, y, z, t).size
        return w * h

    if area(xs, ys, zs, title) <= max_pixels:
        return [(xs, ys, zs)]
    digits = "8" * len(str(len(xs) * len(ys) * len(zs)))
    worst = (f"{title} " if title else "") + f"(page {digits}/{digits})"  # the widest page title

    def fits(px, py, pz):
        return area(px, py, pz, worst) <= max_pixels

    def chunks(values, make):
        out, cur = [], []
        for v in values:
            if cur and not fits(*make(cur + [v])):
                out.append(cur)
                cur = []
            cur.append(v)
        return out + [cur]

    if all(fits(xs, ys, [zv]) for zv in zs):
        return [(xs, ys, c) for c in chunks(zs, lambda c: (xs, ys, c))]
    pages = []
    for zv in zs:
        if all(fits(xs, [yv], [zv]) for yv in ys):
            pages += [(xs, c, [zv]) for c in chunks(ys, lambda c: (xs, c, [zv]))]
        else:
            for yv in ys:
                pages += [(c, [yv], [zv]) for c in chunks(xs, lambda c: (c, [yv], [zv]))]
    return pages
