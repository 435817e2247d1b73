import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from sdexp import grid, grid_rows
from sdexp.grid import AXIS_LABELS, axis_label, draw_grid, draw_xyz, font, wrap_text, xyz_layout
from sdexp.grid_rows import build_grids

CELL = 64


def colour(i: int) -> tuple[int, int, int]:
    """Distinct colours (i < 512) that are never grey, so never background or text pixels."""
    return (30 + i % 8 * 25, 35 + i // 8 % 8 * 25, 45 + i // 64 % 8 * 25)


def solid(i: int, size=(CELL, CELL)) -> Image.Image:
    return Image.new("RGB", size, colour(i))


def centre(box):
    x0, y0, x1, y1 = box
    return (x0 + x1) // 2, (y0 + y1) // 2


def colours_in(img: Image.Image) -> set:
    return {c for _, c in img.getcolors(maxcolors=1 << 20)}


# ---------------------------------------------------------------- labels

def test_axis_label_formats_floats_without_trailing_zero():
    assert axis_label("cfg", 7.0) == "CFG scale: 7"
    assert axis_label("cfg", 7.5) == "CFG scale: 7.5"
    assert axis_label("steps", 20) == "Steps: 20"
    assert axis_label("sampler", "Euler a") == "Sampler: Euler a"
    assert axis_label("vae", "tiny_alt") == "VAE: tiny_alt"
    assert axis_label("cfg", np.float64(4.0)) == "CFG scale: 4"
    assert axis_label("seed", np.int64(3)) == "Seed: 3"


def test_axis_labels_match_a1111():
    assert AXIS_LABELS["cfg"] == "CFG scale"
    assert AXIS_LABELS["clip_skip"] == "Clip skip"
    assert AXIS_LABELS["negative_prompt"] == "Negative prompt"


# ---------------------------------------------------------------- draw_grid / draw_xyz

def grid_images(nx, ny):
    return {(f"s{i}", j): solid(i * 10 + j) for i in range(nx) for j in range(ny)}


def test_grid_cells_placed_at_layout_boxes():
    xs, ys = ["Euler", "Euler a", "DDIM"], [4, 8]
    images = {(x, y): solid(i * 10 + j) for i, x in enumerate(xs) for j, y in enumerate(ys)}
    img = draw_grid(images, xs, ys, "sampler", "steps", title="Prompt: a cat")
    lay = xyz_layout({(k[0], k[1], None): v for k, v in images.items()}, xs, ys, None,
                     "sampler", "steps", None, "Prompt: a cat")
    assert img.size == lay.size
    assert lay.label_w >= CELL and lay.title_h > 0 and lay.col_h > 0
    for i in range(len(xs)):
        for j in range(len(ys)):
            box = lay.cell_box(i, j)
            assert img.getpixel(centre(box)) == colour(i * 10 + j)
            # the whole box is the image: corners too
            assert img.getpixel((box[0], box[1])) == colour(i * 10 + j)
            assert img.getpixel((box[2] - 1, box[3] - 1)) == colour(i * 10 + j)


def test_grid_size_grows_by_one_cell_per_value():
    def size(nx, ny):
        xs, ys = [f"s{i}" for i in range(nx)], list(range(ny))
        return draw_grid(grid_images(nx, ny), xs, ys, "sampler", "seed", None).size

    w1, h1 = size(1, 1)
    assert size(2, 1) == (w1 + CELL, h1)
    assert size(3, 1) == (w1 + 2 * CELL, h1)
    assert size(1, 2) == (w1, h1 + CELL)
    assert size(3, 4) == (w1 + 2 * CELL, h1 + 3 * CELL)


def test_grid_without_y_axis_has_one_row_and_no_row_labels():
    xs = [4.0, 7.5]
    images = {(x, None): solid(i) for i, x in enumerate(xs)}
    img = draw_grid(images, xs, None, "cfg", None, None)
    lay = xyz_layout({(x, None, None): im for (x, _), im in images.items()}, xs, None, None,
                     "cfg", None, None)
    assert lay.label_w == 0 and lay.title_h == 0
    assert img.size == (2 * CELL, lay.col_h + CELL)
    for i in range(2):
        assert img.getpixel(centre(lay.cell_box(i))) == colour(i)


def test_missing_cell_is_light_grey():
    xs, ys = ["a", "b"], [1, 2]
    images = {("a", 1): solid(1), ("b", 2): solid(2)}
    img = draw_grid(images, xs, ys, "model", "steps", None)
    lay = xyz_layout({(*k, None): v for k, v in images.items()}, xs, ys, None, "model", "steps", None)
    assert img.getpixel(centre(lay.cell_box(1, 0))) == grid.MISSING
    assert img.getpixel(centre(lay.cell_box(0, 1))) == grid.MISSING
    assert img.getpixel(centre(lay.cell_box(0, 0))) == colour(1)


def test_xyz_subgrids_side_by_side_with_margin():
    xs, ys, zs = [4, 8], ["Euler", "DDIM"], ["tiny", "tiny_alt", "other"]
    images = {(x, y, z): solid(100 * k + 10 * j + i)
              for i, x in enumerate(xs) for j, y in enumerate(ys) for k, z in enumerate(zs)}
    img = draw_xyz(images, xs, ys, zs, "steps", "sampler", "vae")
    lay = xyz_layout(images, xs, ys, zs, "steps", "sampler", "vae")
    assert img.size == lay.size
    assert lay.z_h > 0 and lay.margin > 0
    assert img.size[0] == 3 * lay.sub_w + 2 * lay.margin
    for k in range(3):
        for j in range(2):
            for i in range(2):
                assert img.getpixel(centre(lay.cell_box(i, j, k))) == colour(100 * k + 10 * j + i)
    # the margin between sub-grids is blank
    gap = img.crop((lay.sub_w, lay.top, lay.sub_w + lay.margin, img.size[1]))
    assert colours_in(gap) == {grid.BACKGROUND}
    # each Z label is drawn in its sub-grid's header band
    for k in range(3):
        band = img.crop((lay.sub_left(k), lay.title_h, lay.sub_left(k) + lay.sub_w,
                         lay.title_h + lay.z_h))
        assert colours_in(band) != {grid.BACKGROUND}

    one = draw_xyz({k: v for k, v in images.items() if k[2] == "tiny"}, xs, ys, ["tiny"],
                   "steps", "sampler", "vae")
    two = draw_xyz({k: v for k, v in images.items() if k[2] != "other"}, xs, ys,
                   ["tiny", "tiny_alt"], "steps", "sampler", "vae")
    assert two.size == (2 * one.size[0] + lay.margin, one.size[1])


def test_xyz_without_z_axis_matches_draw_grid():
    xs, ys = [1, 2], [3, 4]
    images = {(x, y): solid(x * 10 + y) for x in xs for y in ys}
    a = draw_grid(images, xs, ys, "steps", "seed", "t")
    b = draw_xyz({(*k, None): v for k, v in images.items()}, xs, ys, None, "steps", "seed", None, "t")
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("cell", [64, 512])
def test_long_labels_wrap_within_cell_width(cell):
    prompt = ("a very detailed photograph of an astronaut riding a horse on the moon, "
              "dramatic lighting, supercalifragilisticexpialidociousandthensome")
    xs, ys = [prompt, "a cat"], [7.5]
    images = {(x, y): solid(i, (cell, cell)) for i, x in enumerate(xs) for y in ys}
    img = draw_grid(images, xs, ys, "prompt", "cfg", None)
    lay = xyz_layout({(*k, None): v for k, v in images.items()}, xs, ys, None,
                     "prompt", "cfg", None)
    assert lay.font_size == max(grid.MIN_FONT_SIZE, 2 * cell // grid.FONT_DIVISOR)
    fnt = font(lay.font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = lay.x_lines[0]
    assert len(lines) > 2
    assert " ".join(lines).replace(" ", "") == axis_label("prompt", prompt).replace(" ", "")
    for line in lines:
        left, _, right, _ = measure.textbbox((0, 0), line, font=fnt)
        assert right - left <= cell - 2 * lay.pad
    # nothing spills out of the column: the header above the row-label column stays blank,
    # and the label band is tall enough for every line
    corner = img.crop((0, 0, lay.label_w, lay.col_h))
    assert colours_in(corner) == {grid.BACKGROUND}
    label = img.crop((lay.label_w, 0, lay.label_w + cell, lay.col_h))
    assert colours_in(label) != {grid.BACKGROUND}
    assert lay.col_h >= len(lines) * sum(fnt.getmetrics())


def test_wrap_text_breaks_words_wider_than_the_width():
    fnt = font(12)
    lines = wrap_text("x" * 200, fnt, 50)
    assert len(lines) > 3 and "".join(lines) == "x" * 200
    assert all(fnt.getbbox(line)[2] <= 50 for line in lines)


def test_font_scales_with_cell_size():
    small = xyz_layout({(1, None, None): solid(0, (64, 64))}, [1], None, None, "steps", None, None)
    big = xyz_layout({(1, None, None): solid(0, (512, 512))}, [1], None, None, "steps", None, None)
    assert small.font_size >= grid.MIN_FONT_SIZE
    assert big.font_size > small.font_size * 2


# ---------------------------------------------------------------- build_grids

def make_rows(tmp_path: Path, **axes) -> pd.DataFrame:
    """One solid-colour PNG per combination of the given axis values; returns the rows."""
    base = dict(model="tiny", vae="tiny", sampler="Euler a", steps=8, cfg=7.0, clip_skip=1,
                seed=0, prompt="a cat", negative_prompt="", width=CELL, height=CELL)
    (tmp_path / "img").mkdir(exist_ok=True)
    names = list(axes)
    rows = []
    for n, combo in enumerate(itertools.product(*axes.values())):
        row = dict(base, **dict(zip(names, combo)))
        rel = f"img/{n:04d}.png"
        solid(n).save(tmp_path / rel)
        row.update(image_path=rel, clip_score=float("nan"), colour=colour(n))
        rows.append(row)
    return pd.DataFrame(rows)


def test_build_grids_one_file_per_combination_of_other_varying_axes(tmp_path):
    rows = make_rows(tmp_path, cfg=[7.0, 4.5], sampler=["Euler a", "DDIM"],
                     vae=["tiny", "tiny_alt"], steps=[8, 4], prompt=["a cat", "a dog"])
    out = tmp_path / "grids"
    paths = build_grids(rows, tmp_path, out, x="cfg", y="sampler", z="vae")
    assert [p.name for p in paths] == [
        "grid-cfg-x-sampler-y-vae-z-steps_4-prompt_a_cat.png",
        "grid-cfg-x-sampler-y-vae-z-steps_4-prompt_a_dog.png",
        "grid-cfg-x-sampler-y-vae-z-steps_8-prompt_a_cat.png",
        "grid-cfg-x-sampler-y-vae-z-steps_8-prompt_a_dog.png",
    ]
    assert sorted(out.iterdir()) == sorted(paths)  # no temporary files left behind
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o666 & ~umask}     # as plain files, not mkstemp's 0600
    for p in paths:
        steps = int(p.name.split("steps_")[1].split("-")[0])
        prompt = p.name.split("prompt_")[1][:-4].replace("_", " ")
        sub = rows[(rows.steps == steps) & (rows.prompt == prompt)]
        with Image.open(p) as im:
            found = colours_in(im.convert("RGB"))
        assert set(sub.colour) <= found
        assert not set(rows.colour) - set(sub.colour) & found
        # 2 cfg x 2 sampler x 2 vae cells, ordered cfg ascending (4.5 before 7)
        with Image.open(p) as im:
            w, h = im.size
        assert w > 4 * CELL and h > 2 * CELL


def test_build_grids_orders_numeric_axes_numerically(tmp_path):
    rows = make_rows(tmp_path, steps=[20, 4, 10])
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="steps", y=None, z=None)
    with Image.open(path) as im:
        img = im.convert("RGB")
    # colour n belongs to steps=[20, 4, 10][n]; left to right should be 4, 10, 20 -> 1, 2, 0
    mid = img.size[1] - CELL  # a row inside the image area (caption strip is below it)
    xs = [x for x in range(img.size[0]) if img.getpixel((x, mid)) in {colour(0), colour(1), colour(2)}]
    seen = list(dict.fromkeys(img.getpixel((x, mid)) for x in xs))
    assert seen == [colour(1), colour(2), colour(0)]


def test_build_grids_picks_first_or_given_seed_and_captions_it(tmp_path):
    rows = make_rows(tmp_path, cfg=[7.0, 5.0], seed=[11, 3, 7])
    seed_of = dict(zip(map(tuple, rows.colour), rows.seed))

    (first,) = build_grids(rows, tmp_path, tmp_path / "a", x="cfg", y=None, z=None)
    with Image.open(first) as im:
        found = colours_in(im.convert("RGB"))
    assert {seed_of[c] for c in found if c in seed_of} == {3}
    assert len([c for c in found if c in seed_of]) == 2  # one per cfg value

    (given,) = build_grids(rows, tmp_path, tmp_path / "b", x="cfg", y=None, z=None, seed=11)
    with Image.open(given) as im:
        img = im.convert("RGB")
    found = colours_in(img)
    assert {seed_of[c] for c in found if c in seed_of} == {11}

    # the caption strip under each image has text in it; without a caption the grid is shorter
    lay_h = img.size[1]
    plain = draw_grid({(7.0, None): solid(0), (5.0, None): solid(1)}, [5.0, 7.0], None, "cfg",
                      None, None)
    assert lay_h > plain.size[1]
    strip = img.crop((0, lay_h - (lay_h - plain.size[1]), img.size[0], lay_h))
    assert len(colours_in(strip)) > 1


def test_build_grids_seed_axis_gets_no_caption(tmp_path):
    rows = make_rows(tmp_path, seed=[2, 1])
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="seed", y=None, z=None)
    plain = draw_grid({(1, None): solid(1), (2, None): solid(0)}, [1, 2], None, "seed", None, None)
    with Image.open(path) as im:
        assert im.convert("RGB").tobytes() == plain.tobytes()


def test_build_grids_long_names_are_truncated_and_unique(tmp_path):
    long_a = "a " + "very " * 60 + "long prompt one"
    long_b = "a " + "very " * 60 + "long prompt two"
    rows = make_rows(tmp_path, prompt=[long_a, long_b], cfg=[7.0, 8.0])
    paths = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", y=None, z=None)
    names = [p.name for p in paths]
    assert len(set(names)) == 2
    assert all(len(n) <= grid.MAX_NAME + 16 for n in names)
    assert all(n.startswith("grid-cfg-x-prompt_a_very_very") for n in names)
    assert all(p.exists() for p in paths)


def test_build_grids_slug_collisions_get_a_hash(tmp_path):
    rows = make_rows(tmp_path, sampler=["DPM++ 2M", "DPM 2M"], cfg=[7.0, 8.0])
    paths = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", y=None, z=None)
    assert len({p.name for p in paths}) == 2


@pytest.mark.parametrize("kwargs, named", [
    (dict(x="colour"), "colour"),
    (dict(x="cfg", y="sharpness"), "sharpness"),
    (dict(x="cfg", z="nope"), "nope"),
])
def test_unknown_axis_raises_naming_it(tmp_path, kwargs, named):
    rows = make_rows(tmp_path, cfg=[7.0, 8.0])
    with pytest.raises(ValueError) as err:
        build_grids(rows, tmp_path, tmp_path / "out", **kwargs)
    msg = str(err.value)
    key = next(k for k, v in kwargs.items() if v == named)
    assert f"{key}={named!r}" in msg and "cfg" in msg and "sampler" in msg
    assert not (tmp_path / "out").exists()


def test_axis_that_is_not_a_column_raises(tmp_path):
    rows = make_rows(tmp_path, cfg=[7.0, 8.0]).drop(columns=["vae"])
    with pytest.raises(ValueError, match=r"y='vae' is not a column"):
        build_grids(rows, tmp_path, tmp_path / "out", x="cfg", y="vae")


def test_bad_seed_and_repeated_axis_raise(tmp_path):
    rows = make_rows(tmp_path, cfg=[7.0, 8.0])
    with pytest.raises(ValueError, match="seed='last'"):
        build_grids(rows, tmp_path, tmp_path / "out", x="cfg", seed="last")
    with pytest.raises(ValueError, match="different"):
        build_grids(rows, tmp_path, tmp_path / "out", x="cfg", y="cfg")
    with pytest.raises(ValueError, match="axis"):
        axis_label("colour", 1)


def test_build_grids_seed_missing_from_every_cell_gives_blank_grid(tmp_path):
    rows = make_rows(tmp_path, cfg=[7.0, 8.0], seed=[1, 2])
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", y=None, z=None, seed=99)
    with Image.open(path) as im:
        found = colours_in(im.convert("RGB"))
    assert grid.MISSING in found and not found & set(rows.colour)


# ---------------------------------------------------------------- metrics, seed strips, pages

def cell_crop(img: Image.Image, lay, xi, yi=0, zi=0) -> Image.Image:
    return img.crop(lay.cell_box(xi, yi, zi))


def centred(cell: Image.Image, size) -> Image.Image:
    """The cell as draw_xyz places it: centred on the background in a size cell."""
    out = Image.new("RGB", size, grid.BACKGROUND)
    out.paste(cell, ((size[0] - cell.width) // 2, (size[1] - cell.height) // 2))
    return out


def test_metric_caption_under_each_cell_shows_mean_and_interval(tmp_path):
    rows = make_rows(tmp_path, cfg=[5.0, 7.0], seed=[0, 1, 2])
    scores = {5.0: [30.0, 31.0, 32.5], 7.0: [20.0, 20.0, 20.0]}
    rows["clip_score"] = [scores[c][s] for c, s in zip(rows.cfg, rows.seed)]
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", metric="clip_score")

    from sdexp.stats import bootstrap_mean_ci
    mean, lo, hi = bootstrap_mean_ci(scores[5.0])
    assert round(mean, 1) == 31.2
    text5 = f"CLIP 31.2 +/- {(hi - lo) / 2:.1f}"
    text7 = "CLIP 20.0 +/- 0.0"                      # identical values: a zero-width interval
    first = {5.0: rows[(rows.cfg == 5.0) & (rows.seed == 0)], 7.0: rows[(rows.cfg == 7.0) & (rows.seed == 0)]}
    expected = {}
    for cfg, text in ((5.0, text5), (7.0, text7)):
        with Image.open(tmp_path / first[cfg].image_path.iloc[0]) as im:
            expected[cfg] = grid.caption(grid.caption(im.convert("RGB"), "Seed: 0"), text, ref=(CELL, CELL))
    size = (max(e.width for e in expected.values()), max(e.height for e in expected.values()))
    lay = grid.grid_layout(size, [5.0, 7.0], None, None, "cfg", None, None)
    with Image.open(path) as im:
        img = im.convert("RGB")
    assert img.size == lay.size
    for xi, cfg in enumerate((5.0, 7.0)):
        assert cell_crop(img, lay, xi).tobytes() == centred(expected[cfg], size).tobytes()
    # the caption is not drawn when the metric has no value anywhere (here: all NaN)
    rows["clip_score"] = float("nan")
    (plain,) = build_grids(rows, tmp_path, tmp_path / "plain", x="cfg", metric="clip_score")
    (none,) = build_grids(rows, tmp_path, tmp_path / "none", x="cfg")
    with Image.open(plain) as a, Image.open(none) as b:
        assert a.size == b.size and a.size[1] < img.size[1]


def test_unknown_metric_raises_naming_it(tmp_path):
    rows = make_rows(tmp_path, cfg=[5.0, 7.0])
    with pytest.raises(ValueError, match=r"metric='sharpness'.*clip_score"):
        build_grids(rows, tmp_path, tmp_path / "out", x="cfg", metric="sharpness")


def test_estimate_text_has_three_significant_figures():
    from sdexp.estimates import Estimate, format_estimate
    assert format_estimate("clip_score", Estimate(31.234, 30.4, 32.0, 4)) == "CLIP 31.2 +/- 0.8"
    assert format_estimate("kid", Estimate(0.012345, 0.010, 0.014, 9)) == "KID 0.0123 +/- 0.0020"
    assert format_estimate("fid", Estimate(152.31, float("nan"), float("nan"), 9)) == "FID 152"
    assert format_estimate("clip_score", None) == "CLIP n/a"


def test_seed_all_draws_every_seed_of_a_cell_as_a_strip_in_seed_order(tmp_path):
    rows = make_rows(tmp_path, cfg=[5.0, 7.0], seed=[9, 2, 4])
    colour_of = {(c, s): tuple(col) for c, s, col in zip(rows.cfg, rows.seed, rows.colour)}
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", seed="all")
    with Image.open(path) as im:
        img = im.convert("RGB")
    for cfg in (5.0, 7.0):
        parts = [grid.caption(solid(0).copy(), f"Seed: {s}") for s in (2, 4, 9)]
        cell_w, cell_h = 3 * CELL, parts[0].height
        lay = grid.grid_layout((cell_w, cell_h), [5.0, 7.0], None, None, "cfg", None, None)
        x0, y0, _, _ = lay.cell_box([5.0, 7.0].index(cfg))
        # left to right: seeds 2, 4, 9 (ascending), each image at its slot of the strip
        for k, s in enumerate((2, 4, 9)):
            assert img.getpixel((x0 + k * CELL + CELL // 2, y0 + CELL // 2)) == colour_of[(cfg, s)]
    first = build_grids(rows, tmp_path, tmp_path / "first", x="cfg")[0]
    with Image.open(first) as im:
        assert im.size[0] < img.size[0]


def test_seed_strip_is_capped_by_the_page_size(tmp_path):
    rows = make_rows(tmp_path, cfg=[5.0], seed=list(range(12)))
    limit = grid.STRIP_SHARE * CELL * CELL * 5        # room for 5 images per strip
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", seed="all", max_pixels=limit * 10)
    (capped,) = build_grids(rows, tmp_path, tmp_path / "capped", x="cfg", seed="all", max_pixels=limit)
    with Image.open(path) as a, Image.open(capped) as b:
        full, cut = a.convert("RGB"), b.convert("RGB")
    assert set(rows.colour.map(tuple)) <= colours_in(full)
    shown = {tuple(c) for c in rows.colour} & colours_in(cut)
    assert shown == {tuple(c) for c in rows[rows.seed < 5].colour}
    assert cut.size[1] > 0 and cut.size[0] * cut.size[1] <= limit


def page_colours(paths):
    found = []
    for p in paths:
        with Image.open(p) as im:
            found.append(colours_in(im.convert("RGB")))
    return found


@pytest.mark.parametrize("how, page_of, n_pages", [
    ("subgrids", lambda xs, ys, zs: (xs, ys, zs[:1]), 3),       # whole Z sub-grids per page
    ("rows", lambda xs, ys, zs: (xs, ys[:1], zs[:1]), 3 * 2),   # a sub-grid does not fit: rows
    ("columns", lambda xs, ys, zs: (xs[:1], ys[:1], zs[:1]), 3 * 2 * 3),  # a row does not fit
])
def test_huge_grid_is_split_into_pages_under_the_pixel_limit(tmp_path, how, page_of, n_pages):
    xs, ys, zs = [3.0, 5.0, 7.0], ["Euler", "DDIM"], ["a", "b", "c"]
    rows = make_rows(tmp_path, cfg=xs, sampler=ys, vae=zs)
    # the limit is exactly the size of one page of the expected shape (with its page title)
    cell = (CELL, CELL + grid.caption_height(CELL, CELL, "Seed: 0"))
    px, py, pz = page_of(xs, ys, zs)
    w, h = grid.grid_layout(cell, px, py, pz, "cfg", "sampler", "vae", "(page 88/88)").size
    limit = w * h
    (whole,) = build_grids(rows, tmp_path, tmp_path / "whole", x="cfg", y="sampler", z="vae")
    with Image.open(whole) as im:
        assert im.size[0] * im.size[1] > limit
    pages = grid_rows.render_grids(rows, tmp_path, tmp_path / "out", x="cfg", y="sampler", z="vae",
                              max_pixels=limit)
    assert len(pages) == n_pages
    assert [p.page for p in pages] == list(range(1, n_pages + 1))
    assert all(p.pages == n_pages for p in pages)
    assert [p.path.name for p in pages] == [f"grid-cfg-x-sampler-y-vae-z-page-{i}-of-{n_pages}.png"
                                            for i in range(1, n_pages + 1)]
    for p in pages:
        with Image.open(p.path) as im:
            assert im.size[0] * im.size[1] <= limit
    # every image lands on exactly one page, and a page holds one block of the expected shape
    found = page_colours([p.path for p in pages])
    colours = list(rows.colour.map(tuple))
    for c in colours:
        assert sum(c in f for f in found) == 1
    per_page = len(px) * len(py) * len(pz)
    for f in found:
        on_page = rows[[c in f for c in colours]]
        assert len(on_page) == per_page
        assert on_page.vae.nunique() == 1


def test_a_grid_under_the_limit_is_one_file(tmp_path):
    rows = make_rows(tmp_path, cfg=[3.0, 5.0], vae=["a", "b"])
    pages = grid_rows.render_grids(rows, tmp_path, tmp_path / "out", x="cfg", z="vae")
    assert len(pages) == 1 and pages[0].pages == 1 and "page" not in pages[0].path.name
    with pytest.raises(ValueError, match="max_pixels=0"):
        build_grids(rows, tmp_path, tmp_path / "out", x="cfg", max_pixels=0)


def test_group_metric_caption_comes_from_the_groups_table(tmp_path):
    rows = make_rows(tmp_path, cfg=[5.0, 7.0])
    groups = pd.DataFrame([
        {"metric": "fid", "grouping": "cell", "cfg": 5.0, "value": 41.25, "ci_low": 40.0, "ci_high": 42.5, "n": 8},
        {"metric": "fid", "grouping": "cell", "cfg": 7.0, "value": 38.0, "ci_low": float("nan"),
         "ci_high": float("nan"), "n": 8},
        {"metric": "kid", "grouping": "cell", "cfg": 5.0, "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 8},
    ])
    (path,) = build_grids(rows, tmp_path, tmp_path / "out", x="cfg", metric="fid", groups=groups)
    expected = {}
    for cfg, text in ((5.0, "FID 41.2 +/- 1.2"), (7.0, "FID 38.0")):
        src = rows[rows.cfg == cfg].image_path.iloc[0]
        with Image.open(tmp_path / src) as im:
            expected[cfg] = grid.caption(grid.caption(im.convert("RGB"), "Seed: 0"), text, ref=(CELL, CELL))
    size = (CELL, max(e.height for e in expected.values()))
    lay = grid.grid_layout(size, [5.0, 7.0], None, None, "cfg", None, None)
    with Image.open(path) as im:
        img = im.convert("RGB")
    for xi, cfg in enumerate((5.0, 7.0)):
        assert cell_crop(img, lay, xi).tobytes() == centred(expected[cfg], size).tobytes()
