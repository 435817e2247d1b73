"""A rule-based judge of shapes images, independent of every trained model: what colour, what shape,
what background an image shows.

- background: the median colour of the image's outer ring of pixels, named by the nearest colour of
  the set (Euclidean RGB);
- shape colour: the median of the pixels far from the background (beyond half the 99th percentile of
  the distance), named the same way;
- shape: the largest connected region of pixels nearer the shape colour than the background. A
  triangle (upright, as the set draws it) is much narrower in the top quarter of its bounding box
  than in the bottom quarter; of the rest, a square fills its bounding box (fill > 0.89, between
  1 and pi/4) and a circle fills about pi/4 of it.

On the set's own images it is right on every image tested (tests/test_shapes.py); generated images
are judged by the same rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import COLOURS

_NAMES = tuple(COLOURS)
_RGB = np.array([COLOURS[n] for n in _NAMES], dtype=np.float64)
MIN_CONTRAST = 60.0          # RGB distance below which no shape is seen
TRIANGLE_TAPER = 0.6         # top-quarter width / bottom-quarter width below this: a triangle
SQUARE_FILL = 0.89           # region area / bounding-box area above this: a square


@dataclass(frozen=True)
class Verdict:
    colour: str | None       # None: no shape found
    shape: str | None
    background: str
    fill: float = float("nan")
    taper: float = float("nan")


def nearest_colour(rgb) -> str:
    return _NAMES[int(np.argmin(((_RGB - np.asarray(rgb, np.float64)) ** 2).sum(axis=1)))]


def _largest_region(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def classify_region(region: np.ndarray) -> tuple[str | None, float, float]:
    """(shape, fill ratio, taper) of a boolean mask holding one region."""
    ys, xs = np.nonzero(region)
    if len(ys) < 12:
        return None, float("nan"), float("nan")
    box = region[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    fill = float(box.mean())
    widths = box.sum(axis=1).astype(float)
    q = max(1, len(widths) // 4)
    taper = float(widths[:q].mean() / max(widths[-q:].mean(), 1.0))
    if taper < TRIANGLE_TAPER:
        return "triangle", fill, taper
    return ("square" if fill > SQUARE_FILL else "circle"), fill, taper


def judge(image) -> Verdict:
    """The colour, shape and background an HxWx3 uint8 image (or PIL image) shows."""
    px = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float64)[..., :3]
    ring = np.concatenate([px[:2].reshape(-1, 3), px[-2:].reshape(-1, 3),
                           px[:, :2].reshape(-1, 3), px[:, -2:].reshape(-1, 3)])
    bg = np.median(ring, axis=0)
    dist = np.sqrt(((px - bg) ** 2).sum(axis=-1))
    background = nearest_colour(bg)
    top = float(np.percentile(dist, 99))
    if top < MIN_CONTRAST:
        return Verdict(None, None, background)
    fg = np.median(px[dist > top / 2], axis=0)
    nearer_fg = ((px - fg) ** 2).sum(axis=-1) < ((px - bg) ** 2).sum(axis=-1)
    shape, fill, taper = classify_region(_largest_region(nearer_fg))
    return Verdict(nearest_colour(fg), shape, background, fill, taper)


def rates(images, items) -> dict[str, float]:
    """Share of images whose colour, shape, background (and all three) match the items they were made for."""
    verdicts = [judge(im) for im in images]
    n = max(len(verdicts), 1)
    colour = sum(v.colour == it.colour for v, it in zip(verdicts, items)) / n
    shape = sum(v.shape == it.shape for v, it in zip(verdicts, items)) / n
    background = sum(v.background == it.background for v, it in zip(verdicts, items)) / n
    every = sum((v.colour, v.shape, v.background) == (it.colour, it.shape, it.background)
                for v, it in zip(verdicts, items)) / n
    return {"colour": colour, "shape": shape, "background": background, "all": every}
