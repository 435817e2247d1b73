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


def test_lcm_lora_is_a_lora_with_the_lcm_sampler(tmp_path):
    path = write_kohya_lora(tmp_path / "lcm-lora.safetensors", tiny_pipeline(), text_encoder=False, seed=11)
    model = ModelSpec("tiny", "tiny")
    lora = LoraSpec("lcm-lora", str(path))
    cells = [lcm_cell(model, 1.0), lcm_cell(model, 1.0, lora, 1.0)]
    images = render_cells(cells)
    assert mean_diff(images[cells[0]], images[cells[1]]) > 1
