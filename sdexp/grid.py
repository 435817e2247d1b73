"""Labelled X/Y/Z comparison grids, drawn the way AUTOMATIC1111's X/Y/Z plot draws them.

Layout of one grid (all sizes in pixels, derived from the cell size):

    +---------------------------------------------+
    |                 title (optional)            |  title_h
    +---------------------------------------------+
    |   Z label        | margin |   Z label       |  z_h  (0 without a Z axis)
    |       | X1 | X2  |        |       | X1 | X2 |  col_h
    | Y1    | img| img |        | Y1    | img| img |  row_h per row (>= cell_h)
    | Y2    | img| img |        | Y2    | img| img |
    +---------------------------------------------+
     label_w (0 without a Y axis), then one cell_w per X value; sub-grids are
     `margin` apart.

`xyz_layout` returns that geometry (`Layout.cell_box` gives each image's box), and
`draw_xyz` / `draw_grid` draw exactly it, so callers and tests can locate every cell.

`render_grids` builds grids from stored rows: one file per combination of the other swept
axes; a cell shows its first seed or all of them as a strip (each captioned "Seed: N"), then
optionally a metric line ("CLIP 31.2 +/- 0.8"); a grid over `max_pixels` is split into pages.
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
from functools import lru_cache
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .axes import AXIS_LABELS, DERIVED  # labels and derived columns come from the axis registry
from .image_health import flag_note

# Layout constants. Label font size follows A1111: (cell_w + cell_h) // 25, but never
# below MIN_FONT_SIZE so 64px cells stay legible.
FONT_DIVISOR = 25
MIN_FONT_SIZE = 12
TITLE_SCALE = 1.25           # title font = label font * TITLE_SCALE
CAPTION_DIVISOR = 50         # seed caption font = (w + h) // 50 ...
MIN_CAPTION_SIZE = 10        # ... but at least this
PAD_DIVISOR = 3              # padding around label text = max(MIN_PAD, font // 3)
MIN_PAD = 4
SPACING_DIVISOR = 6          # gap between wrapped lines = max(2, font // 6)
MARGIN_FONTS = 2             # gap between Z sub-grids = 2 * label font size
MAX_ROW_LABEL_CELLS = 3      # the row-label column widens up to 3 cells before rows grow
BACKGROUND = (255, 255, 255)
MISSING = (224, 224, 224)    # cells with no image
TEXT = (0, 0, 0)
MAX_NAME = 120               # file-name stem length before truncation + hash
DEFAULT_MAX_PIXELS = 32_000_000  # larger grids are split into pages (Pillow warns at 89 MP)
STRIP_SHARE = 4              # a seed strip (seed="all") holds at most max_pixels / 4 of images


# ---------------------------------------------------------------- labels and text

def _check_axis(key: str, axis, columns=None) -> None:
    choices = [a for a in AXIS_LABELS if columns is None or a in columns]
    if axis not in AXIS_LABELS or (columns is not None and axis not in columns):
        where = "an axis name" if axis not in AXIS_LABELS else "a column of rows"
        raise ValueError(f"{key}={axis!r} is not {where}; valid choices: {', '.join(choices)}")


def format_value(value) -> str:
    """7.0 -> '7', 7.5 -> '7.5', numpy scalars as Python ones, NaN/None -> 'None'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "None"
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def axis_label(axis: str, value) -> str:
    """'cfg', 7.0 -> 'CFG scale: 7'."""
    _check_axis("axis", axis)
    return f"{AXIS_LABELS[axis]}: {format_value(value)}"


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def text_width(text: str, fnt) -> int:
    left, _, right, _ = fnt.getbbox(text)
    return right - min(left, 0)


def line_height(fnt) -> int:
    ascent, descent = fnt.getmetrics()
    return ascent + descent


def wrap_text(text: str, fnt, max_width: int) -> list[str]:
    """Greedy word wrap to max_width; words wider than that are broken between characters."""
    max_width = max(1, max_width)
    lines: list[str] = []
    for para in str(text).split("\n"):
        cur = ""
        for word in para.split():
            cand = f"{cur} {word}" if cur else word
            if text_width(cand, fnt) <= max_width:
                cur = cand
                continue
            if cur:
                lines.append(cur)
            while len(word) > 1 and text_width(word, fnt) > max_width:
                k = len(word) - 1
                while k > 1 and text_width(word[:k], fnt) > max_width:
                    k -= 1
                lines.append(word[:k])
                word = word[k:]
            cur = word
        lines.append(cur)
    return lines


def _block_height(n_lines: int, fnt, spacing: int) -> int:
    return n_lines * line_height(fnt) + max(0, n_lines - 1) * spacing


def _draw_block(draw, lines, fnt, cx: float, top: float, spacing: int) -> None:
    step = line_height(fnt) + spacing
    for i, line in enumerate(lines):
        draw.text((cx, top + i * step), line, font=fnt, fill=TEXT, anchor="ma")


# ---------------------------------------------------------------- layout

@dataclass(frozen=True)
class Layout:
    cell_w: int
    cell_h: int
    font_size: int
    title_font_size: int
    pad: int
    spacing: int
    margin: int          # between Z sub-grids
    label_w: int         # row-label column; 0 without a Y axis
    row_h: int           # row pitch, >= cell_h (grows only if a row label cannot fit)
    title_h: int
    z_h: int
    col_h: int
    title_lines: tuple[str, ...]
    x_lines: tuple[tuple[str, ...], ...]
    y_lines: tuple[tuple[str, ...], ...] | None
    z_lines: tuple[tuple[str, ...], ...] | None

    @property
    def n_x(self) -> int:
        return len(self.x_lines)

    @property
    def n_y(self) -> int:
        return len(self.y_lines) if self.y_lines is not None else 1

    @property
    def n_z(self) -> int:
        return len(self.z_lines) if self.z_lines is not None else 1

    @property
    def sub_w(self) -> int:
        return self.label_w + self.n_x * self.cell_w

    @property
    def top(self) -> int:
        """y of the first row of cells."""
        return self.title_h + self.z_h + self.col_h

    @property
    def size(self) -> tuple[int, int]:
        width = self.n_z * self.sub_w + (self.n_z - 1) * self.margin
        return width, self.top + self.n_y * self.row_h

    def sub_left(self, zi: int) -> int:
        return zi * (self.sub_w + self.margin)

    def cell_box(self, xi: int, yi: int = 0, zi: int = 0) -> tuple[int, int, int, int]:
        x0 = self.sub_left(zi) + self.label_w + xi * self.cell_w
        y0 = self.top + yi * self.row_h + (self.row_h - self.cell_h) // 2
        return x0, y0, x0 + self.cell_w, y0 + self.cell_h


def font_size_for(cell_w: int, cell_h: int) -> int:
    return max(MIN_FONT_SIZE, (cell_w + cell_h) // FONT_DIVISOR)


def layout(cell_size: tuple[int, int], x_labels, y_labels=None, z_labels=None,
           title: str | None = None) -> Layout:
    """Geometry for a grid of cell_size cells with these (already formatted) labels."""
    cell_w, cell_h = cell_size
    fs = font_size_for(cell_w, cell_h)
    tfs = round(fs * TITLE_SCALE)
    fnt, tfnt = font(fs), font(tfs)
    pad = max(MIN_PAD, fs // PAD_DIVISOR)
    spacing = max(2, fs // SPACING_DIVISOR)

    def wrapped(labels, width):
        return tuple(tuple(wrap_text(t, fnt, width - 2 * pad)) for t in labels)

    def band(blocks, f):
        return max(_block_height(len(b), f, spacing) for b in blocks) + 2 * pad

    x_lines = wrapped(x_labels, cell_w)
    col_h = band(x_lines, fnt)

    y_lines, label_w, row_h = None, 0, cell_h
    if y_labels is not None:
        label_w = cell_w
        while True:
            y_lines = wrapped(y_labels, label_w)
            need = band(y_lines, fnt)
            if need <= cell_h or label_w >= MAX_ROW_LABEL_CELLS * cell_w:
                break
            label_w += max(1, cell_w // 2)
        row_h = max(cell_h, need)

    sub_w = label_w + len(x_lines) * cell_w
    z_lines, z_h = None, 0
    if z_labels is not None:
        z_lines = wrapped(z_labels, sub_w)
        z_h = band(z_lines, fnt)
    n_z = len(z_lines) if z_lines is not None else 1
    margin = MARGIN_FONTS * fs
    total_w = n_z * sub_w + (n_z - 1) * margin

    title_lines, title_h = (), 0
    if title:
        title_lines = tuple(wrap_text(title, tfnt, total_w - 2 * pad))
        title_h = band([title_lines], tfnt)

    return Layout(cell_w, cell_h, fs, tfs, pad, spacing, margin, label_w, row_h,
                  title_h, z_h, col_h, title_lines, x_lines, y_lines, z_lines)


def _values(values) -> list:
    return [None] if values is None or len(values) == 0 else list(values)


def xyz_layout(images: dict, x_values, y_values, z_values, x_axis, y_axis, z_axis,
               title: str | None = None) -> Layout:
    """The exact layout draw_xyz uses for these arguments."""
    if not images:
        raise ValueError("no images to draw")
    cell_w = max(im.width for im in images.values())
    cell_h = max(im.height for im in images.values())
    return grid_layout((cell_w, cell_h), x_values, y_values, z_values, x_axis, y_axis, z_axis, title)


def grid_layout(cell_size: tuple[int, int], x_values, y_values, z_values, x_axis, y_axis, z_axis,
                title: str | None = None) -> Layout:
    """The layout of a grid of cell_size cells with these axis values (labels formatted here)."""
    if x_values is None or len(x_values) == 0:
        raise ValueError("x_values is empty")
    x_labels = [axis_label(x_axis, v) for v in x_values]
    y_labels = [axis_label(y_axis, v) for v in _values(y_values)] if y_axis else None
    z_labels = [axis_label(z_axis, v) for v in _values(z_values)] if z_axis else None
    return layout(cell_size, x_labels, y_labels, z_labels, title)


# ---------------------------------------------------------------- drawing

def draw_xyz(images: dict, x_values, y_values, z_values, x_axis: str, y_axis: str | None,
             z_axis: str | None, title: str | None = None,
             cell_size: tuple[int, int] | None = None) -> Image.Image:
    """One labelled sub-grid per Z value, side by side. Keys are (x, y, z); y/z are None
    when that axis is None. Missing keys are drawn as light grey cells. Cells are as large as
    the largest image, or `cell_size` when given (images are centred in their cell)."""
    if cell_size is None:
        lay = xyz_layout(images, x_values, y_values, z_values, x_axis, y_axis, z_axis, title)
    else:
        lay = grid_layout(cell_size, x_values, y_values, z_values, x_axis, y_axis, z_axis, title)
    ys, zs = _values(y_values) if y_axis else [None], _values(z_values) if z_axis else [None]
    canvas = Image.new("RGB", lay.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    fnt = font(lay.font_size)
    if lay.title_lines:
        _draw_block(draw, lay.title_lines, font(lay.title_font_size), lay.size[0] / 2,
                    lay.pad, lay.spacing)
    for zi, zv in enumerate(zs):
        left = lay.sub_left(zi)
        if lay.z_lines is not None:
            _draw_block(draw, lay.z_lines[zi], fnt, left + lay.sub_w / 2,
                        lay.title_h + lay.pad, lay.spacing)
        for xi, lines in enumerate(lay.x_lines):
            h = _block_height(len(lines), fnt, lay.spacing)
            cx = left + lay.label_w + xi * lay.cell_w + lay.cell_w / 2
            _draw_block(draw, lines, fnt, cx, lay.title_h + lay.z_h + (lay.col_h - h) // 2,
                        lay.spacing)
        for yi, yv in enumerate(ys):
            if lay.y_lines is not None:
                lines = lay.y_lines[yi]
                h = _block_height(len(lines), fnt, lay.spacing)
                _draw_block(draw, lines, fnt, left + lay.label_w / 2,
                            lay.top + yi * lay.row_h + (lay.row_h - h) // 2, lay.spacing)
            for xi, xv in enumerate(x_values):
                x0, y0, x1, y1 = lay.cell_box(xi, yi, zi)
                im = images.get((xv, yv, zv))
                if im is None:
                    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=MISSING)
                else:
                    canvas.paste(im.convert("RGB"),
                                 (x0 + (lay.cell_w - im.width) // 2, y0 + (lay.cell_h - im.height) // 2))
    return canvas


def draw_grid(images: dict, x_values, y_values, x_axis: str, y_axis: str | None,
              title: str | None = None) -> Image.Image:
    """X as labelled columns, Y as labelled rows; keys are (x, y), with y None when y_axis is."""
    images3 = {(xv, yv, None): im for (xv, yv), im in images.items()}
    return draw_xyz(images3, x_values, y_values, None, x_axis, y_axis, None, title)


def _caption_geometry(width: int, height: int, text: str, ref: tuple[int, int] | None = None):
    fs = max(MIN_CAPTION_SIZE, sum(ref or (width, height)) // CAPTION_DIVISOR)
    fnt = font(fs)
    pad = max(2, fs // PAD_DIVISOR)
    spacing = max(2, fs // SPACING_DIVISOR)
    lines = wrap_text(text, fnt, width - 2 * pad)
    return fnt, pad, spacing, lines, _block_height(len(lines), fnt, spacing) + 2 * pad


def caption_height(width: int, height: int, text: str, ref: tuple[int, int] | None = None) -> int:
    """Height of the strip caption() adds under a width x height image."""
    return _caption_geometry(width, height, text, ref)[-1]


def caption(image: Image.Image, text: str, ref: tuple[int, int] | None = None) -> Image.Image:
    """The image with a small line of text in a white strip underneath; the font follows the
    image's size, or `ref`'s (one image of a strip) when given."""
    fnt, pad, spacing, lines, strip = _caption_geometry(image.width, image.height, text, ref)
    out = Image.new("RGB", (image.width, image.height + strip), BACKGROUND)
    out.paste(image.convert("RGB"), (0, 0))
    _draw_block(ImageDraw.Draw(out), lines, fnt, image.width / 2, image.height + pad, spacing)
    return out


def hstack(images: list[Image.Image]) -> Image.Image:
    """Images side by side, top-aligned, on the background colour."""
    out = Image.new("RGB", (sum(im.width for im in images), max(im.height for im in images)), BACKGROUND)
    left = 0
    for im in images:
        out.paste(im.convert("RGB"), (left, 0))
        left += im.width
    return out


# ---------------------------------------------------------------- building from rows

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
    columns = []
    for name in rows.columns:
        values = rows[name].tolist()
        try:
            memo: dict = {}
            columns.append([memo[v] if v in memo else memo.setdefault(v, plain_value(v)) for v in values])
        except TypeError:        # unhashable values
            columns.append([plain_value(v) for v in values])
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


def _save_atomic(image: Image.Image, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    try:
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
