"""The captioned shapes set: 64x64 images of one flat-coloured shape on a flat background, drawn by code.

Every image is a pure function of (split, index): its caption cycles through every combination of
shape, colour and background (so any run of 126 consecutive indices holds each caption once), and
its size and position come from a numpy generator seeded with (DATA_SEED, split, index). The same
index always gives the same pixels. Captions read `a red circle on a white background`.

Splits: `train` (what the shapes model is trained on) and `heldout` (never seen in training: the
real images that FD and CMMD compare against, and on which the judge's accuracy is measured).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

SIZE = 64
DATA_SEED = 16
SPLITS = {"train": 0, "heldout": 1}
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "purple": (140, 40, 180),
}
SUPERSAMPLE = 4                  # shapes are drawn at 4x and box-filtered down (smooth edges)
RADIUS = (12, 20)                # half the shape's width, pixels at 64x64
MARGIN = 3                       # pixels kept clear between the shape and the image border
JITTER = 10                      # the centre lies at most this far from the image centre, each axis


@dataclass(frozen=True)
class Item:
    shape: str
    colour: str
    background: str

    @property
    def caption(self) -> str:
        return caption(self.shape, self.colour, self.background)


def caption(shape: str, colour: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


COMBINATIONS: tuple[Item, ...] = tuple(
    Item(s, c, b) for c, s, b in product(COLOURS, SHAPES, COLOURS) if c != b)
CAPTIONS: tuple[str, ...] = tuple(i.caption for i in COMBINATIONS)


def parse_caption(text: str) -> Item | None:
    """The Item a caption names, or None when it is not in the set's grammar."""
    words = text.strip().lower().split()
    if len(words) != 7 or words[0] != "a" or words[3:5] != ["on", "a"] or words[6] != "background":
        return None
    colour, shape, background = words[1], words[2], words[5]
    if shape not in SHAPES or colour not in COLOURS or background not in COLOURS or colour == background:
        return None
    return Item(shape, colour, background)


def item(split: str, index: int) -> Item:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid: {', '.join(SPLITS)}")
    return COMBINATIONS[index % len(COMBINATIONS)]


def draw(it: Item, cx: float, cy: float, r: float) -> np.ndarray:
    """HxWx3 uint8: the shape of radius r (half its width) centred at (cx, cy) on its background."""
    from PIL import Image, ImageDraw

    k = SUPERSAMPLE
    im = Image.new("RGB", (SIZE * k, SIZE * k), COLOURS[it.background])
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = (cx - r) * k, (cy - r) * k, (cx + r) * k, (cy + r) * k
    fill = COLOURS[it.colour]
    if it.shape == "circle":
        d.ellipse((x0, y0, x1, y1), fill=fill)
    elif it.shape == "square":
        d.rectangle((x0, y0, x1, y1), fill=fill)
    else:                                   # upright triangle filling the same box
        d.polygon([(cx * k, y0), (x1, y1), (x0, y1)], fill=fill)
    return np.asarray(im.resize((SIZE, SIZE), Image.BOX))


def geometry(split: str, index: int) -> tuple[float, float, float]:
    """(cx, cy, r) of an image, from a generator seeded with (DATA_SEED, split, index)."""
    rng = np.random.default_rng([DATA_SEED, SPLITS[split], index])
    r = float(rng.uniform(RADIUS[0], RADIUS[1]))
    low, high = max(r + MARGIN, SIZE / 2 - JITTER), min(SIZE - r - MARGIN, SIZE / 2 + JITTER)
    return float(rng.uniform(low, high)), float(rng.uniform(low, high)), r


def image(split: str, index: int) -> np.ndarray:
    return draw(item(split, index), *geometry(split, index))


def batch(split: str, start: int, count: int) -> tuple[np.ndarray, list[str]]:
    """(count x 64 x 64 x 3 uint8 images, their captions) for indices start .. start + count - 1."""
    images = np.stack([image(split, i) for i in range(start, start + count)])
    return images, [item(split, i).caption for i in range(start, start + count)]


def indices(count: int, captions=None) -> list[int]:
    """The first `count` indices of a split, or the first `count` whose caption is in `captions`."""
    if captions is None:
        return list(range(count))
    wanted = set(captions)
    unknown = sorted(wanted - set(CAPTIONS))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a caption of the shapes set (such as {CAPTIONS[0]!r})")
    keep = [i for i, c in enumerate(CAPTIONS) if c in wanted]
    return [keep[j % len(keep)] + len(COMBINATIONS) * (j // len(keep)) for j in range(count)]


def write_folder(folder: Path | str, split: str = "heldout", count: int = len(COMBINATIONS),
                 captions=None) -> list[Path]:
    """Write `count` images of a split (the first ones, or the first ones of the given captions) as
    PNGs (`00000-a_red_circle_on_a_white_background.png`) plus captions.txt (one `file<TAB>caption`
    a line). Rewriting gives identical bytes."""
    from PIL import Image

    chosen = indices(count, captions)           # a caption outside the set fails before any write
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths, lines = [], []
    for i in chosen:
        text = item(split, i).caption
        path = folder / f"{i:05d}-{text.replace(' ', '_')}.png"
        Image.fromarray(image(split, i)).save(path, optimize=False)
        paths.append(path)
        lines.append(f"{path.name}\t{text}")
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")
    return paths
