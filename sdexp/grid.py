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

sdexp.grid_rows builds grids from stored rows with them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from .axes import AXIS_LABELS  # labels come from the axis registry (others import them from here)

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
