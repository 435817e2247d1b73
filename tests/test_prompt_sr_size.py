"""Prompt S/R (A1111's search/replace axis) and the size axis: cells, rows, grids and metadata."""
from __future__ import annotations

import pytest
from PIL import Image

from sdexp.metadata import parse_a1111_parameters
from sdexp.plan import make_plan
from sdexp.prompts import search_replace
from sdexp.sweep import run_sweep


def test_search_replace_replaces_in_prompt_and_negative_and_keeps_the_first_value():
    rows = search_replace(["cat", "dog"], ["a cat on a mat", "two cats"], "ugly cat")
    assert rows == [("cat", "a cat on a mat", "a cat on a mat", "ugly cat"),
                    ("cat", "two cats", "two cats", "ugly cat"),
                    ("dog", "a cat on a mat", "a dog on a mat", "ugly dog"),
                    ("dog", "two cats", "two dogs", "ugly dog")]
    assert search_replace(None, ["a"], "n") == [(None, "a", "a", "n")]
@pytest.mark.slow
def test_prompt_sr_is_one_axis_and_the_grid_groups_by_the_prompt_before_replacement(compose_cfg):
    cfg = compose_cfg(["name=sr", "steps=2", "prompts=default", "prompt_sr=[painting,photo,sketch]",
                       "seed=[0,1]", "run.progress=false", "prompts.items=['a painting of a fox','a painting of a lake']"])
    plan = make_plan([cfg])
    assert len(plan.cells) == 3 * 2 * 2 and plan.swept == ["prompt_sr", "seed"]
    assert plan.grid["x"] == "prompt_sr"
    out = run_sweep([cfg], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"])
    assert set(rows.prompt) == {f"a {w} of a {t}" for w in ("painting", "photo", "sketch") for t in ("fox", "lake")}
    assert set(rows.prompt_template) == {"a painting of a fox", "a painting of a lake"}
    # one grid per prompt template, each with the three S/R values as columns
    assert len(out["grids"]) == 2 and all("prompt_sr-x" in g.name for g in out["grids"])
    assert rows.cell_id.nunique() == 3                       # cells pool over prompts, as without S/R
    r = rows[rows.prompt == "a sketch of a fox"].iloc[0]
    assert Image.open(out["folder"] / r.image_path).info["parameters"].startswith("a sketch of a fox\n")


def test_size_axis_renders_each_size_and_replaces_width_and_height(compose_cfg):
    cfgs = [compose_cfg(["name=size", "steps=2", "prompts=single", f"size={s}", "run.progress=false"])
            for s in ("64x64", "96x64", "64x128")]
    plan = make_plan(cfgs, ["size"])
    assert plan.swept == ["size"] and plan.grid["x"] == "size"
    out = run_sweep(cfgs, ["size"], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"])
    for r in rows.itertuples():
        image = Image.open(out["folder"] / r.image_path)
        assert image.size == (r.width, r.height) and r.size == f"{r.width}x{r.height}"
        assert parse_a1111_parameters(image.info["parameters"])["Size"] == r.size
    assert sorted(rows["size"]) == ["64x128", "64x64", "96x64"]
    assert [g.name for g in out["grids"]] == ["grid-size-x.png"]


def test_width_alone_stays_the_axis_when_only_width_is_swept(compose_cfg):
    cfgs = [compose_cfg(["prompts=single", f"width={w}"]) for w in (64, 96)]
    assert make_plan(cfgs, ["width"]).swept == ["width"]


def test_cells_without_the_new_axes_keep_their_ids():
    """A cell that uses none of LoRA, embedding, img2img or S/R has the cell_id it had before those
    axes existed (a hash of the original fields only), so stored sweeps still resume."""
    from dataclasses import asdict

    from sdexp.plan import OPTIONAL_FIELDS, digest
    from render_helpers import cell

    c = cell()
    before = {k: v for k, v in asdict(c).items() if k not in OPTIONAL_FIELDS and k not in ("seed", "prompt")}
    assert c.cell_id == digest(before)
    assert cell(strength=None).cell_id == c.cell_id and cell(prompt_sr="x").cell_id != c.cell_id


@pytest.mark.parametrize("overrides, warned", [
    (["size=512x512"], "size 512x512 is 8x the 64 px that model 'tiny' was trained at"),
    (["size=128x64"], None),
    (["hires.scale=4"], None),            # a native-size first pass, upscaled
])
def test_a_size_far_past_the_models_native_side_is_warned(compose_cfg, overrides, warned):
    from sdexp.plan import make_plan

    plan = make_plan([compose_cfg(["model=tiny", "prompt='a cat'", *overrides])], [])
    assert len(plan.warnings) == (0 if warned is None else 1)
    if warned:
        assert plan.warnings[0].startswith(warned)
