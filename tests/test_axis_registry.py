"""The test battery every axis of the registry (sdexp/axes.py) gets for free.

For each grid axis: two values listed inside one job plan as two cells, render together, and each
equals its solo render (so cells differing only in that axis never share the work it invalidates)
and they differ from each other; a bad value fails at plan time before any model loads, naming key
and value; the label and infotext key exist, and the PNG's parameters round-trip; the row column
has its declared type. A new axis needs only its `examples` (or an entry in FILE_VALUES below)."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import sdexp.models
from sdexp.axes import AXES, BY_NAME, REGISTRY, ConfigError
from sdexp.metadata import INFOTEXT_ORDER, infotext_fields, parse_a1111_parameters
from sdexp.models import ModelCache
from sdexp.plan import make_plan
from sdexp.render import render
from sdexp.reproduce import SHORT_HASH
from adapter_files import embedding_vectors, write_a1111_safetensors, write_kohya_lora
from render_helpers import max_diff, tiny_pipeline

BASE = ["steps=2", "cfg=5", "seed=3", "prompt='a red apple'", "sampler=euler_a", "scorer=none"]
# what an axis needs around it to act
CONTEXT = {
    "lora_weight": ["lora=style.safetensors"],
    "strength": ["init_image=init.png", "steps=4"],
    "init_image": ["steps=4", "strength=0.75"],
    "eta": ["sampler=ddim"],
    "schedule": ["sampler=euler", "steps=4"],      # at 2 steps every sigma schedule is its two end points
    "s_churn": ["sampler=euler"],
    "s_tmin": ["sampler=euler", "s_churn=2"],
    "s_tmax": ["sampler=euler", "s_churn=2"],
    "s_noise": ["sampler=euler", "s_churn=2"],
    "subseed": ["subseed_strength=0.5"],
    "subseed_strength": ["subseed=5"],
    "embedding": ["prompt='a <embedding> apple'"],
    **{a: ["hires.scale=2"] for a in ("hires_steps", "hires_strength", "hires_upscaler")},
    "refiner": ["model=tiny_sdxl", "steps=4"],
    "refiner_switch": ["model=tiny_sdxl", "refiner=tiny_sdxl_refiner", "steps=4"],
}
# axes whose values are files or text, built here (the registry's `examples` serve the others)
FILE_VALUES = {
    "model": ("tiny", "tiny_sdxl"),
    "vae": ("tiny", "tiny_alt"),
    "lora": ("style.safetensors", "other.safetensors"),
    "embedding": ("emb_a.safetensors", "emb_b.safetensors"),
    "init_image": ("init.png", "init2.png"),
    "prompt": ("a red apple", "a blue sky"),
    "negative_prompt": ("blurry", "dark"),
    "refiner": ("tiny_sdxl_refiner", "tiny_sdxl"),
}
BAD = {"refiner": "nope", "model": "nope", "vae": "/missing/vae.safetensors", "lora": "nope", "embedding": "nope",
       "init_image": "missing.png", "prompt": "''", "negative_prompt": "'x\nNegative prompt: y'",
       "prompt_sr": "[zebra,dog]"}
SAME_ON_CPU = {"rng"}              # rng=gpu draws on the render device: the CPU here
BATTERY = [a for a in AXES if a not in ("prompt_sr",)]
# the default run renders a trajectory-level and a batch-noise-level axis (the decode level, VAEs
# sharing one denoise, is test_engine's and test_samplers'); `make test-all` renders every axis
QUICK = {"cfg", "subseed_strength"}
RENDERED = [a if a in QUICK else pytest.param(a, marks=pytest.mark.slow) for a in BATTERY]
PIXEL_TOL = 2                      # batched vs solo renders (PLATFORM.md: reduction order)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("axis_files")
    pipe = tiny_pipeline()
    write_kohya_lora(folder / "style.safetensors", pipe, seed=1)
    write_kohya_lora(folder / "other.safetensors", pipe, seed=2)
    write_a1111_safetensors(folder / "emb_a.safetensors", embedding_vectors(pipe.text_encoder, seed=1))
    write_a1111_safetensors(folder / "emb_b.safetensors", embedding_vectors(pipe.text_encoder, seed=2))
    rng = np.random.default_rng(0)
    for name in ("init.png", "init2.png"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def cache():
    return ModelCache(2)


def _values(axis: str) -> tuple:
    return FILE_VALUES.get(axis) or BY_NAME[axis].examples


def _plan(compose_cfg, overrides):
    return make_plan([compose_cfg(overrides)], [o.split("=")[0] for o in overrides])


def _render(cells, cache) -> dict:
    out = {}
    for items in render(cells, cache, batch_size=8, device=torch.device("cpu"), dtype=torch.float32):
        for item in items:
            out[item["cell"]] = item
    return out


def test_every_axis_is_covered():
    for a in BATTERY:
        assert len(_values(a)) == 2, f"axis {a} has no two example values for the battery"
        assert a in BAD or BY_NAME[a].bad is not None, f"axis {a} has no bad value for the battery"


@pytest.mark.parametrize("axis", RENDERED)
def test_two_values_in_one_job_render_as_their_solo_renders(axis, compose_cfg, files, cache, monkeypatch):
    monkeypatch.chdir(files)
    key = BY_NAME[axis].config_key
    values = ",".join(str(v) for v in _values(axis))
    plan = _plan(compose_cfg, [*BASE, *CONTEXT.get(axis, []), f"{key}=[{values}]"])
    assert plan.swept == [axis]
    assert len(plan.cells) == 2
    together = _render(plan.cells, cache)
    for c in plan.cells:
        solo = _render([c], cache)[c]
        assert max_diff(together[c]["array"], solo["array"]) <= PIXEL_TOL, f"{axis}={c.axis(axis)}"
    a, b = (together[c]["array"] for c in plan.cells)
    if axis not in SAME_ON_CPU:
        assert a.shape != b.shape or max_diff(a, b) > 0, f"the two values of {axis} rendered the same image"
    for c in plan.cells:
        _check_infotext(c, together[c]["image"])


def _check_infotext(cell, image):
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=image.info.get("pnginfo"))
    params = parse_a1111_parameters(Image.open(io.BytesIO(buf.getvalue())).text["parameters"])
    expected = infotext_fields(cell)          # a key two axes share holds the value of the one that is on
    for a in REGISTRY:
        if a.infotext:         # "Refiner: name [hash]": the hash comes from the loaded model, not the cell
            value = params.get(a.infotext, "")
            assert (SHORT_HASH.sub("", value) if a.name == "refiner" else value) == expected[a.infotext], \
                (a.name, params)
    assert params["prompt"].startswith(cell.prompt.replace("<embedding>", cell.embedding.name)
                                       if cell.embedding else cell.prompt)


@pytest.mark.parametrize("axis", BATTERY + ["prompt_sr"])
def test_bad_value_fails_before_any_model_loads(axis, compose_cfg, files, monkeypatch):
    monkeypatch.chdir(files)
    monkeypatch.setattr(sdexp.models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    spec = BY_NAME[axis]
    bad = BAD.get(axis, spec.bad)
    with pytest.raises(ConfigError) as err:
        _plan(compose_cfg, [*BASE, *CONTEXT.get(axis, []), f"{spec.config_key}={bad}"])
    message = str(err.value)
    assert spec.config_key in message or axis in message, message
    if axis not in BAD:
        assert re.search(re.escape(f"={bad!r}") + "|" + re.escape(f"={bad}"), message), message


def test_labels_and_infotext_keys():
    assert set(INFOTEXT_ORDER) >= {a.infotext for a in REGISTRY if a.infotext}
    for a in REGISTRY:
        assert a.label and a.arrow in ("string", "int64", "float64")
    assert BY_NAME["cfg"].label == "CFG scale" and BY_NAME["schedule"].infotext == "Schedule type"
@pytest.mark.slow
def test_row_columns_have_their_declared_types(compose_cfg, tmp_path, files, monkeypatch):
    from sdexp.sweep import run_sweep

    monkeypatch.chdir(files)
    overrides = ["steps=2", "seed=[1,2]", "prompt='a red apple'", "sampler=euler", "schedule=karras",
                 "s_churn=1", "subseed=4", "subseed_strength=0.2", "lora=style.safetensors", "lora_weight=0.5",
                 "name=types", "scorer=none"]
    out = run_sweep([compose_cfg(overrides)], [o.split("=")[0] for o in overrides], log=lambda *a: None)
    [part] = sorted((out["folder"] / "rows").rglob("*.parquet"))[:1]
    schema = pq.read_schema(part)
    for a in REGISTRY:
        assert a.name in schema.names, a.name
        if str(schema.field(a.name).type) != "null":
            assert str(schema.field(a.name).type) == {"string": "string", "int64": "int64",
                                                     "float64": "double"}[a.arrow], a.name


def test_readme_tables_match_the_registry():
    from sdexp.docs_tables import render as render_tables

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "<!-- axes-table -->" in readme and "<!-- samplers-table -->" in readme
    assert render_tables(readme) == readme, "README tables are stale: run python -m sdexp.docs_tables"

