"""LCM as a sampler value: with an LCM-LoRA on an ordinary checkpoint, and with an LCM-distilled
checkpoint (a UNet that takes the guidance scale as an embedding, `time_cond_proj_dim`)."""
from __future__ import annotations

import pytest
import torch

from adapter_files import write_kohya_lora
from render_helpers import AUTO, as_uint8, max_diff, mean_diff, render_cells, tiny_pipeline
from sdexp.lora import LoraSpec
from sdexp.models import ModelSpec
from sdexp.plan import Cell
from sdexp.samplers import build_scheduler, get_sampler

STEPS = 4


@pytest.fixture(scope="module")
def lcm_folder(tmp_path_factory):
    """The tiny model with its UNet rebuilt as an LCM-distilled one (seeded weights)."""
    from diffusers import UNet2DConditionModel

    pipe = tiny_pipeline()
    torch.manual_seed(7)
    pipe.unet = UNet2DConditionModel.from_config({**pipe.unet.config, "time_cond_proj_dim": 32})
    with torch.no_grad():     # a strong guidance condition, so that its effect shows on random weights
        pipe.unet.time_embedding.cond_proj.weight.mul_(50)
    folder = tmp_path_factory.mktemp("lcm") / "tiny-lcm"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def lcm_cell(model, cfg, lora=None, weight=None):
    return Cell(model, AUTO, "LCM", STEPS, cfg, 1, 0, "a cat", "", 64, 64, lora=lora, lora_weight=weight)


def test_lcm_distilled_checkpoint_embeds_guidance_like_diffusers(lcm_folder):
    from diffusers import StableDiffusionPipeline

    model = ModelSpec("tiny-lcm", str(lcm_folder))
    cells = [lcm_cell(model, cfg) for cfg in (1.5, 8.0)]
    images = render_cells(cells)
    assert mean_diff(images[cells[0]], images[cells[1]]) > 1          # guidance acts through the embedding

    pipe = StableDiffusionPipeline.from_pretrained(lcm_folder, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = build_scheduler(get_sampler("LCM"), pipe.scheduler.config, [0])
    ref = pipe(prompt="a cat", num_inference_steps=STEPS, guidance_scale=8.0, height=64, width=64,
               generator=torch.Generator("cpu").manual_seed(0), output_type="np").images[0]
    assert max_diff(images[cells[1]], as_uint8(ref)) <= 1
@pytest.mark.slow
def test_lcm_lora_is_a_lora_with_the_lcm_sampler(tmp_path):
    path = write_kohya_lora(tmp_path / "lcm-lora.safetensors", tiny_pipeline(), text_encoder=False, seed=11)
    model = ModelSpec("tiny", "tiny")
    lora = LoraSpec("lcm-lora", str(path))
    cells = [lcm_cell(model, 1.0), lcm_cell(model, 1.0, lora, 1.0)]
    images = render_cells(cells)
    assert mean_diff(images[cells[0]], images[cells[1]]) > 1


@pytest.mark.slow
def test_lcm_is_one_value_of_a_sampler_axis_with_its_lora_steps_and_cfg(tmp_path, compose_cfg):
    """sampler=euler_a,lcm with lcm.lora/steps/cfg: LCM cells get the LCM-LoRA at weight 1, their own
    steps and CFG, and the grid has one axis (sampler), not steps and CFG as well."""
    from sdexp.plan import make_plan
    from sdexp.sweep import run_sweep

    path = write_kohya_lora(tmp_path / "lcm-lora.safetensors", tiny_pipeline(), text_encoder=False, seed=11)
    common = ["name=lcm", "prompt='a cat'", "steps=6", "cfg=7", f"+loras.lcm={path}", "lcm.lora=lcm",
              "lcm.steps=2", "lcm.cfg=1.5", "run.progress=false"]
    cfgs = [compose_cfg([*common, f"sampler={s}"]) for s in ("euler_a", "lcm")]
    plan = make_plan(cfgs, ["sampler"])
    assert plan.swept == ["sampler"] and plan.grid["x"] == "sampler"
    lcm = [c for c in plan.cells if c.sampler == "LCM"][0]
    assert (lcm.steps, lcm.cfg, lcm.lcm_lora.name) == (2, 1.5, "lcm")
    assert [(c.steps, c.cfg, c.lcm_lora) for c in plan.cells if c.sampler == "Euler a"] == [(6, 7.0, None)]

    out = run_sweep(cfgs, ["sampler"], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"]).set_index("sampler")
    assert rows.loc["LCM", "lcm_lora"] == "lcm" and rows.loc["LCM", "steps"] == 2
    assert [g.name for g in out["grids"]] == ["grid-sampler-x.png"]
    from PIL import Image

    params = Image.open(out["folder"] / rows.loc["LCM", "image_path"]).info["parameters"]
    assert "<lora:lcm:1>" in params.split("\n")[0] and "Steps: 2, Sampler: LCM, CFG scale: 1.5" in params

    # the preset renders what the explicit LCM-LoRA cell renders
    explicit = lcm_cell(ModelSpec("tiny", "tiny"), 1.5, LoraSpec("lcm", str(path)), 1.0)
    explicit = Cell(**{**explicit.__dict__, "steps": 2})
    image = render_cells([explicit])[explicit]
    assert max_diff(image, __import__("numpy").asarray(Image.open(out["folder"] / rows.loc["LCM", "image_path"]))) <= 1


@pytest.mark.slow
def test_a_lora_stacks_with_the_lcm_lora_as_diffusers_does(tmp_path):
    pipe = tiny_pipeline()
    style = write_kohya_lora(tmp_path / "style.safetensors", pipe, seed=2)
    lcm = write_kohya_lora(tmp_path / "lcm.safetensors", pipe, text_encoder=False, seed=11)
    model = ModelSpec("tiny", "tiny")
    both = Cell(model, AUTO, "LCM", STEPS, 1.5, 1, 0, "a cat", "", 64, 64, lora=LoraSpec("style", str(style)),
                lora_weight=0.6, lcm_lora=LoraSpec("lcm", str(lcm)))
    ours = render_cells([both])[both]
    pipe.load_lora_weights(str(style), adapter_name="style")
    pipe.load_lora_weights(str(lcm), adapter_name="lcm")
    pipe.set_adapters(["style", "lcm"], adapter_weights=[0.6, 1.0])
    pipe.scheduler = build_scheduler(get_sampler("LCM"), pipe.scheduler.config, [0])
    ref = pipe(prompt="a cat", negative_prompt="", num_inference_steps=STEPS, guidance_scale=1.5, height=64,
               width=64, generator=torch.Generator("cpu").manual_seed(0), output_type="np").images[0]
    assert max_diff(ours, as_uint8(ref)) <= 1
