"""The SDXL refiner against plain diffusers: StableDiffusionXLPipeline(denoising_end=switch,
output_type="latent"), then StableDiffusionXLImg2ImgPipeline(image=latents, denoising_start=switch)
on the tiny refiner (text_encoder_2 alone, aesthetic-score conditioning), each with a fresh
generator of the image's seed. Also: one base denoise serves every refiner and switch value of it,
each model loads once, and rows, PNG parameters, reproduce and the dry run record both passes."""
from __future__ import annotations

import pytest
import torch
from readme_sweeps import readme_sweep
from render_helpers import AUTO, as_uint8, max_diff, render_cells, sweep_recording

from sdexp import refiner as refiner_module
from sdexp import tiny_sdxl
from sdexp.metadata import parse_a1111_parameters
from sdexp.models import ModelCache, ModelSpec
from sdexp.plan import Cell
from sdexp.samplers import build_scheduler, get_sampler

STEPS = 4
BASE = ModelSpec("tiny_sdxl", "tiny_sdxl")
REFINER = ModelSpec("tiny_sdxl_refiner", "tiny_sdxl_refiner")
# (sampler, switch, refiner): an ancestral sampler (the refiner draws noise), a multistep one, a
# second-order one (its timesteps come in pairs), and the base model finishing its own denoise
CASES = [("Euler a", 0.5, REFINER), ("Euler", 0.6, BASE)]
MORE_CASES = [("DPM++ 2M", 0.75, REFINER), ("Heun", 0.5, REFINER)]        # under make test-all


class Reference:
    """Base and refiner as diffusers pipelines, loaded from the same folders as sdexp loads."""

    def __init__(self):
        from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

        self.base = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl.tiny_sdxl_folder(), add_watermarker=False)
        self.refiners = {
            REFINER: StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_sdxl.tiny_refiner_folder(),
                                                                      add_watermarker=False),
            BASE: StableDiffusionXLImg2ImgPipeline(**self.base.components),
        }
        assert self.refiners[REFINER].config.requires_aesthetics_score
        for p in (self.base, *self.refiners.values()):
            p.set_progress_bar_config(disable=True)

    def image(self, sampler, switch, refiner, seed=0, prompt="a cat", cfg=7.0):
        self.base.scheduler = build_scheduler(get_sampler(sampler), dict(self.base.scheduler.config), [seed])
        latents = self.base(prompt, num_inference_steps=STEPS, guidance_scale=cfg, denoising_end=switch,
                            height=64, width=64, generator=torch.Generator("cpu").manual_seed(seed),
                            output_type="latent").images
        pipe = self.refiners[refiner]
        pipe.scheduler = build_scheduler(get_sampler(sampler), dict(pipe.scheduler.config), [seed])
        out = pipe(prompt, image=latents, num_inference_steps=STEPS, guidance_scale=cfg, denoising_start=switch,
                   generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images[0]
        return as_uint8(out)


@pytest.fixture(scope="module")
def reference():
    return Reference()


def sdxl_cell(sampler, switch=None, refiner=None, seed=0):
    return Cell(BASE, AUTO, sampler, STEPS, 7.0, 1, seed, "a cat", "", 64, 64, refiner=refiner, refiner_switch=switch)


def test_refiner_equals_base_then_refiner_pipelines(reference, monkeypatch):
    cells = [sdxl_cell(*case) for case in CASES]
    plain = sdxl_cell("Euler a")                 # the base alone: the same denoise as case 0's base, run to the end
    bases = []
    real = refiner_module._base_denoise
    monkeypatch.setattr(refiner_module, "_base_denoise", lambda model, enc, part, ends: bases.append((part, ends))
                        or real(model, enc, part, ends))
    cache = ModelCache(1)
    ours = render_cells([*cells, plain], cache)
    for case, c in zip(CASES, cells):
        assert max_diff(ours[c], reference.image(*case)) <= 1, case
    assert cache.loads == 2                  # the base once, the refiner once (the base finishing its own: no load)
    assert sorted(len(part) for part, _ in bases) == [1, 1] and ((plain,), (0.5, 1.0)) in \
        [(tuple(part), ends) for part, ends in bases]
    monkeypatch.undo()
    alone = render_cells([plain])[plain]
    assert max_diff(alone, ours[plain]) == 0
    assert max_diff(alone, ours[cells[0]]) > 0       # the refiner changed the image


@pytest.mark.slow
def test_multistep_and_second_order_samplers_equal_the_pipelines(reference):
    cells = [sdxl_cell(*case) for case in MORE_CASES]
    ours = render_cells(cells)
    for case, c in zip(MORE_CASES, cells):
        assert max_diff(ours[c], reference.image(*case)) <= 1, case


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """refiner x refiner_switch, one sampler and seed, through run_sweep, counting base denoises."""
    from hydra import compose, initialize_config_dir

    from sdexp.hydra_setup import register_all
    from sdexp.paths import CONF_DIR
    from sdexp.plan import make_plan

    root = tmp_path_factory.mktemp("refiner") / "results"
    register_all()
    overrides = ["model=tiny_sdxl", f"steps={STEPS}", "seed=3", "prompt='a cat'", "scorer=none", "name=refined",
                 f"results_root={root}", "run.progress=false", "refiner=[tiny_sdxl_refiner,tiny_sdxl]",
                 "refiner_switch=[0.5,0.75]", "sampler=euler_a"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=overrides)]
    keys = ["refiner", "refiner_switch"]
    out, calls = sweep_recording(refiner_module, "_base_denoise", cfgs, keys)     # (model, enc, cells, ends)
    return {"out": out, "bases": [(cells, ends) for _, _, cells, ends in calls], "plan": make_plan(cfgs, keys)}


def test_one_base_denoise_serves_every_refiner_and_switch(sweep):
    import pandas as pd

    from sdexp.dryrun import summary

    denoised = [c for cells, _ in sweep["bases"] for c in cells]
    assert len(denoised) == 1                                      # one, not 4
    assert all(c.refiner is None and c.refiner_switch is None for c in denoised)
    assert {ends for _, ends in sweep["bases"]} == {(0.5, 0.75)}   # kept at both switch points
    s = summary(sweep["plan"], set(), pd.DataFrame(), 8)
    assert (s["cells"], s["trajectories"], s["second_passes"]) == (4, 1, 4)
    assert (s["models"], s["prompt_encodings"]) == (2, 4)       # base and refiner; each encodes prompt and negative
    # Euler a at 4 steps on SDXL's schedule: timesteps 751, 501, 251, 1; switch 0.5 cuts at 500, 0.75 at
    # 250: the base runs 3 steps (to the latest switch), each refiner 2 (switch 0.5) or 1 (0.75); x2 (CFG)
    assert s["unet_evaluations"] == 3 * 2 + 2 * (2 + 1) * 2
    assert s["unet_evaluations_per_cell_loop"] == 2 * (2 + 3) * 2 + 2 * (2 + 1) * 2


def test_rows_parameters_and_reproduce_record_both_passes(sweep, reference):
    import numpy as np
    from PIL import Image

    import sdexp
    from sdexp.reproduce import parameters_overrides

    folder = sweep["out"]["folder"]
    rows = sdexp.load_rows(folder)
    assert len(rows) == 4 and set(rows.refiner) == {"tiny_sdxl_refiner", "tiny_sdxl"}
    assert sorted(set(rows.refiner_switch)) == [0.5, 0.75] and set(rows.model) == {"tiny_sdxl"}
    assert rows.model_hash.nunique() == 1 and rows.refiner_hash.nunique() == 2
    assert set(rows[rows.refiner == "tiny_sdxl"].refiner_hash) == set(rows.model_hash)
    r = rows[(rows.refiner == "tiny_sdxl_refiner") & (rows.refiner_switch == 0.5)].iloc[0]
    image = np.asarray(Image.open(folder / r.image_path).convert("RGB"))
    assert max_diff(image, reference.image("Euler a", 0.5, REFINER, seed=3)) <= 1
    params = parse_a1111_parameters(Image.open(folder / r.image_path).info["parameters"])
    assert params["Refiner"] == f"tiny_sdxl_refiner [{r.refiner_hash[:10]}]"
    assert params["Refiner switch at"] == "0.5" and params["Model"] == "tiny_sdxl"
    out = parameters_overrides(Image.open(folder / r.image_path).info["parameters"])
    assert {"refiner='tiny_sdxl_refiner'", "refiner_switch=0.5"} <= set(out)
    names = sorted(g.name for g in sweep["out"]["grids"])
    assert names and all("refiner-x" in n and "refiner_switch-y" in n for n in names)


@pytest.mark.parametrize("overrides, expected", [
    (["model=tiny", "refiner=tiny_sdxl_refiner"], "is set with an SD1 checkpoint"),
    (["model=tiny_sdxl", "refiner=tiny"], "is not an SDXL model"),
    (["model=tiny_sdxl", "refiner=tiny_sdxl_refiner", "hires.scale=2"], "cannot be combined with the hires fix"),
    (["model=tiny_sdxl", "refiner=tiny_sdxl_refiner", "refiner_switch=1"], "refiner_switch=1"),
    (["model=tiny_sdxl", "refiner=nope"], "refiner='nope' is not a known name"),
    (["model=tiny_sdxl", "refiner_switch=[0.5,0.7]"], "refiner_switch is swept but no job sets a refiner"),
])
def test_bad_refiner_settings_fail_at_plan_time(compose_cfg, overrides, expected, monkeypatch):
    import sdexp.models
    from sdexp.axes import ConfigError
    from sdexp.plan import make_plan

    monkeypatch.setattr(sdexp.models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(ConfigError, match="refiner") as err:
        make_plan([compose_cfg(["prompt='a cat'", *overrides])], [o.split("=")[0] for o in overrides])
    assert expected in str(err.value)


def test_readme_refiner_sweep_denoises_one_base_per_seed_and_prompt(compose_cfg):
    cfgs, plan, s = readme_sweep(compose_cfg, "refiner-sweep")
    seeds_and_prompts = len({(c.seed, c.prompt) for c in plan.cells})
    assert len(cfgs) == 4 and s["cells"] == 4 * seeds_and_prompts
    assert s["trajectories"] == seeds_and_prompts and s["second_passes"] == 4 * seeds_and_prompts
    assert plan.grid["x"] == "refiner" and plan.grid["y"] == "refiner_switch"


def test_a_refiner_folder_is_checked_for_changes_on_rerun(compose_cfg):
    from sdexp.plan import make_plan
    from sdexp.preflight import weight_files

    folder = tiny_sdxl.tiny_refiner_folder()
    plan = make_plan([compose_cfg(["model=tiny_sdxl", f"refiner={folder}", "prompt='a cat'"])], ["refiner"])
    assert ("refiner", folder.resolve(), "refiner_source", "refiner_hash", str(folder)) in weight_files(plan)
    assert {c.refiner.name for c in plan.cells} == {"model"}      # a folder's name: its last part
