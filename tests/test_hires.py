"""The hires fix against plain diffusers: StableDiffusionPipeline for the first pass, the upscale done
here with torch or Pillow, then StableDiffusionImg2ImgPipeline at the target size with a fresh
generator of the same seed. Also: a sweep over scale x strength x sampler denoises each first pass
once, its rows, PNG parameters and grids record both passes, and the dry run counts them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from readme_sweeps import readme_sweep
from render_helpers import as_uint8, cell, max_diff, render_cells, sweep_recording, tiny_pipeline

from sdexp.metadata import parse_a1111_parameters
from sdexp.samplers import build_scheduler, get_sampler

STEPS = 2
# (sampler, upscaler, scale, strength, hires steps)
CASES = [("Euler a", "Latent", 1.5, 0.5, 0), ("DPM++ 2M", "Latent (nearest-exact)", 2.0, 0.6, 3),
         ("Euler a", "Lanczos", 2.0, 1.0, 0), ("DPM++ 2M", "Nearest", 1.5, 1.0, 4)]
MODES = {"Latent": ("bilinear", False), "Latent (nearest-exact)": ("nearest-exact", False),
         "Latent (antialiased)": ("bilinear", True)}
PIL_FILTERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}


class Reference:
    """The two-pass sequence built from diffusers pipelines, sharing components with sdexp's tiny model."""

    def __init__(self):
        from diffusers import StableDiffusionImg2ImgPipeline

        self.txt2img = tiny_pipeline()
        self.img2img = StableDiffusionImg2ImgPipeline(**self.txt2img.components)
        self.img2img.set_progress_bar_config(disable=True)
        self.config = dict(self.txt2img.scheduler.config)     # the model's own (see PLATFORM.md)
        self._first: dict = {}

    def _scheduler(self, sampler, seed):
        return build_scheduler(get_sampler(sampler), self.config, [seed])

    def first(self, sampler, seed, prompt, cfg, latent: bool):
        key = (sampler, seed, prompt, cfg, latent)
        if key not in self._first:
            self.txt2img.scheduler = self._scheduler(sampler, seed)
            self._first[key] = self.txt2img(
                prompt, negative_prompt="", num_inference_steps=STEPS, guidance_scale=cfg,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="latent" if latent else "pil").images
        return self._first[key]

    def image(self, sampler, upscaler, scale, strength, hires_steps, seed=0, prompt="a cat", cfg=7.0):
        width = height = int(64 * scale)
        latent = upscaler.startswith("Latent")
        first = self.first(sampler, seed, prompt, cfg, latent)
        if latent:
            mode, antialias = MODES[upscaler]
            image = F.interpolate(first, size=(height // 8, width // 8), mode=mode, antialias=antialias)
        else:
            image = first[0].resize((width, height), resample=PIL_FILTERS[upscaler])
        self.img2img.scheduler = self._scheduler(sampler, seed)
        out = self.img2img(prompt, negative_prompt="", image=image, strength=strength,
                           num_inference_steps=hires_steps or STEPS, guidance_scale=cfg,
                           generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images[0]
        return as_uint8(out)


@pytest.fixture(scope="module")
def reference():
    return Reference()


def hires_cell(sampler, upscaler, scale, strength, hires_steps, **axes):
    return cell(sampler=sampler, steps=STEPS, hires_scale=scale, hires_strength=strength, hires_steps=hires_steps,
                hires_upscaler=upscaler, **axes)


def test_hires_equals_txt2img_then_img2img_pipelines(reference):
    cells = [hires_cell(*case) for case in CASES]
    ours = render_cells(cells)
    for case, c in zip(CASES, cells):
        ref = reference.image(*case)
        assert ours[c].shape == ref.shape == (int(64 * case[2]),) * 2 + (3,)
        assert max_diff(ours[c], ref) <= 1, case
    assert max_diff(ours[cells[0]][:64, :64], ours[cells[2]][:64, :64]) > 0      # the upscaler matters


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The issue's sweep: hires.scale=1.5,2 x hires.strength=0.5,1 x sampler=euler_a,dpmpp_2m, one seed, as
    the launcher hands it over (one job per combination), counting the first passes denoised."""
    from hydra import compose, initialize_config_dir

    from sdexp import two_pass
    from sdexp.hydra_setup import register_all
    from sdexp.paths import CONF_DIR
    from sdexp.plan import make_plan

    root = tmp_path_factory.mktemp("hires") / "results"
    register_all()
    base = ["model=tiny", f"steps={STEPS}", "seed=3", "prompt='a cat'", "scorer=none", "name=hires",
            f"results_root={root}", "run.progress=false"]
    jobs = [[f"hires.scale={s}", f"hires.strength={d}", f"sampler={p}"]
            for s in (1.5, 2) for d in (0.5, 1.0) for p in ("euler_a", "dpmpp_2m")]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=[*base, *job]) for job in jobs]
    keys = ["hires.scale", "hires.strength", "sampler"]
    out, calls = sweep_recording(two_pass, "_denoise_cells", cfgs, keys)       # (model, enc, cells, vae_of)
    return {"out": out, "first_passes": [c for _, _, cells, _ in calls for c in cells], "plan": make_plan(cfgs, keys)}


def test_sweep_denoises_each_first_pass_once(sweep):
    import pandas as pd

    from sdexp.dryrun import summary

    first = sweep["first_passes"]
    assert len(first) == 2                                 # one per sampler for the seed and prompt, not 8
    assert {c.sampler for c in first} == {"Euler a", "DPM++ 2M"} and all(c.hires_scale is None for c in first)
    s = summary(sweep["plan"], set(), pd.DataFrame(), 8)
    assert (s["cells"], s["trajectories"], s["second_passes"]) == (8, 2, 8)
    # first passes: 2 x 2 steps x 2 (CFG); second passes: int(2 * strength) steps x 2 each
    assert s["unet_evaluations"] == 2 * 2 * 2 + 4 * (1 * 2) + 4 * (2 * 2)
    assert s["unet_evaluations_per_cell_loop"] == 8 * 2 * 2 + 4 * (1 * 2) + 4 * (2 * 2)


@pytest.mark.slow
def test_every_image_of_the_sweep_equals_its_reference(sweep, reference):
    import sdexp

    rows = sdexp.load_rows(sweep["out"]["folder"])
    assert len(rows) == 8
    for r in rows.itertuples():
        image = np.asarray(Image.open(sweep["out"]["folder"] / r.image_path).convert("RGB"))
        ref = reference.image(r.sampler, r.hires_upscaler, r.hires_scale, r.hires_strength, 0, seed=r.seed)
        assert max_diff(image, ref) <= 1, (r.sampler, r.hires_scale, r.hires_strength, r.seed)


def test_rows_parameters_and_grids_record_both_passes(sweep):
    import sdexp

    folder = sweep["out"]["folder"]
    rows = sdexp.load_rows(folder)
    assert set(zip(rows.hires_scale, rows.final_width, rows.final_height)) == {(1.5, 96, 96), (2.0, 128, 128)}
    assert set(rows.width) == {64} and set(rows.hires_upscaler) == {"Latent"} and set(rows.hires_steps) == {0}
    assert sorted(set(rows.hires_strength)) == [0.5, 1.0] and rows.strength.isna().all()
    r = rows[(rows.hires_scale == 2.0) & (rows.hires_strength == 0.5)].iloc[0]
    params = parse_a1111_parameters(Image.open(folder / r.image_path).info["parameters"])
    assert (params["Size"], params["Hires upscale"], params["Hires upscaler"], params["Denoising strength"]) == \
        ("64x64", "2", "Latent", "0.5")
    assert "Hires steps" not in params                     # 0: the job's steps, which A1111 leaves out
    names = sorted(g.name for g in sweep["out"]["grids"])
    assert names and all("hires_scale-x" in n and "hires_strength-y" in n for n in names)


def test_reproduce_reads_hires_parameters_back():
    from sdexp.reproduce import parameters_overrides

    text = "a cat\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, Denoising strength: 0.5, " \
           "Hires upscale: 2, Hires steps: 3, Hires upscaler: Latent (bicubic)"
    out = parameters_overrides(text)
    assert {"hires.strength=0.5", "hires.scale=2", "hires.steps=3", "hires.upscaler='Latent (bicubic)'"} <= set(out)
    assert "strength=0.5" not in out
    img2img = parameters_overrides("a cat\nSteps: 2, Seed: 1, Denoising strength: 0.5")
    assert "strength=0.5" in img2img


def test_readme_hires_sweep_plans_two_first_passes_per_seed_and_prompt(compose_cfg):
    """The README's hires command, expanded into its multirun jobs as Hydra's sweeper does, planned."""
    cfgs, plan, s = readme_sweep(compose_cfg, "hires-sweep")
    seeds_and_prompts = len({(c.seed, c.prompt) for c in plan.cells})
    assert len(cfgs) == 8 and s["cells"] == 8 * seeds_and_prompts
    assert s["trajectories"] == 2 * seeds_and_prompts and s["second_passes"] == 8 * seeds_and_prompts
