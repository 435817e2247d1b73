"""img2img: init images and the denoising-strength axis, equal to diffusers' img2img pipeline, with
A1111's metadata and rows that name the init image by file and hash."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from render_helpers import AUTO, as_uint8, cell, max_diff, mean_diff, render_cells, tiny_pipeline
from sdexp.img2img import init_images, steps_run
from sdexp.metadata import parse_a1111_parameters
from sdexp.models import VaeSpec
from sdexp.samplers import build_scheduler, get_sampler
from sdexp.sweep import run_sweep

STEPS = 6


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("init")
    rng = np.random.RandomState(0)
    Image.fromarray((rng.rand(64, 64, 3) * 255).astype("uint8")).save(d / "noise.png")
    ramp = np.linspace(0, 255, 96 * 80 * 3).reshape(80, 96, 3).astype("uint8")   # another size: resized
    Image.fromarray(ramp).save(d / "ramp.png")
    (d / "notes.txt").write_text("not an image, skipped")
    return d


@pytest.mark.parametrize("sampler,strength", [("Euler a", 0.5), *(pytest.param(*p, marks=pytest.mark.slow) for p in [("DDIM", 0.75), ("DPM++ 2M Karras", 1.0)])])
def test_img2img_equals_diffusers_img2img_pipeline(init_dir, sampler, strength):
    from diffusers import StableDiffusionImg2ImgPipeline

    init = init_images(str(init_dir / "noise.png"))[0]
    c = cell(sampler=sampler, steps=STEPS, init_image=init, strength=strength)
    ours = render_cells([c])[c]

    pipe = tiny_pipeline(StableDiffusionImg2ImgPipeline)
    pipe.scheduler = build_scheduler(get_sampler(sampler), pipe.scheduler.config, [0])
    ref = pipe(prompt="a cat", negative_prompt="", image=Image.open(init.source), strength=strength,
               num_inference_steps=STEPS, guidance_scale=7.0, generator=torch.Generator("cpu").manual_seed(0),
               output_type="np").images[0]
    assert max_diff(ours, as_uint8(ref)) <= 1


def test_strength_and_init_image_change_the_image_and_batches_match_single_renders(init_dir):
    inits = init_images(str(init_dir))
    assert [i.name for i in inits] == ["noise.png", "ramp.png"]           # images only, sorted
    cells = [cell(steps=STEPS, init_image=i, strength=s, seed=seed)
             for i in inits for s in (0.3, 0.9) for seed in (0, 1)]
    batched = render_cells(cells, batch_size=8)
    single = render_cells(cells[:2], batch_size=1)
    for c in cells[:2]:
        assert max_diff(batched[c], single[c]) <= 2
    noise = {s: batched[cell(steps=STEPS, init_image=inits[0], strength=s)] for s in (0.3, 0.9)}
    ramp = batched[cell(steps=STEPS, init_image=inits[1], strength=0.3)]
    assert mean_diff(noise[0.3], noise[0.9]) > 1 and mean_diff(noise[0.3], ramp) > 1
    assert ramp.shape == (64, 64, 3)                                       # resized to the cell's size
    assert steps_run(6, 0.3) == 1 and steps_run(6, 1.0) == 6 and steps_run(20, 0.75) == 15
@pytest.mark.slow
def test_each_vae_encodes_its_own_init_image(init_dir):
    init = init_images(str(init_dir / "noise.png"))[0]
    alt = VaeSpec("tiny_alt", "tiny_alt")
    cells = [cell(steps=STEPS, init_image=init, strength=0.5, vae=v) for v in (AUTO, alt)]
    images = render_cells(cells)
    # a decode of the other VAE's trajectory would differ from a full img2img with that VAE
    from diffusers import AutoencoderKL, StableDiffusionImg2ImgPipeline
    from sdexp import tiny

    pipe = tiny_pipeline(StableDiffusionImg2ImgPipeline)
    pipe.vae = AutoencoderKL.from_pretrained(tiny.tiny_vae_folder("tiny_alt"))
    pipe.scheduler = build_scheduler(get_sampler("Euler a"), pipe.scheduler.config, [0])
    ref = pipe(prompt="a cat", negative_prompt="", image=Image.open(init.source), strength=0.5,
               num_inference_steps=STEPS, guidance_scale=7.0, generator=torch.Generator("cpu").manual_seed(0),
               output_type="np").images[0]
    assert max_diff(images[cells[1]], as_uint8(ref)) <= 1
@pytest.mark.slow
def test_rows_and_metadata_record_init_image_and_strength(init_dir, compose_cfg):
    from sdexp.hashing import file_sha256

    cfgs = [compose_cfg(["name=i2i", "steps=4", "prompts=single", f"init_image={init_dir}", f"strength={s}",
                         "run.progress=false"]) for s in (0.5, 1.0)]
    out = run_sweep(cfgs, ["strength"], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"])
    assert len(rows) == 4 and sorted(rows.strength.unique()) == [0.5, 1.0]
    r = rows[rows.init_image == "ramp.png"].iloc[0]
    assert r.init_image_hash == file_sha256(init_dir / "ramp.png")
    params = parse_a1111_parameters(Image.open(out["folder"] / r.image_path).info["parameters"])
    assert params["Denoising strength"] == f"{r.strength:g}"
    assert sorted(g.name for g in out["grids"]) == ["grid-strength-x-init_image-y.png"]
