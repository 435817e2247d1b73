"""The axes added with the registry, each against its diffusers equivalent: a cell rendered alone by
sdexp's engine equals `StableDiffusionPipeline.__call__` with the same components, embeddings, steps,
guidance scale and generator, within 1/255 (CPU, float32).

- schedule: the pipeline's scheduler built with the schedule's flags;
- eta: the pipeline's own `eta=` argument;
- s_churn / s_tmin / s_tmax / s_noise: EulerDiscreteScheduler.step's own arguments, given to the
  pipeline's scheduler (the pipeline passes only eta and generator);
- subseed: the pipeline's `latents=` holding A1111's slerp of the seed's and the subseed's noise,
  written out here from A1111's formula (modules/rng.py), with the seed's generator advanced past its
  noise as the pipeline would;
- rng=gpu: on a CUDA device, the pipeline with a CUDA generator (gpu marker).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from sdexp.encode import encode_prompts
from sdexp.samplers import build_scheduler, get_sampler, get_schedule
from render_helpers import TINY, AUTO, max_diff, render_cells, tiny_pipeline
from sdexp.plan import Cell

STEPS, SIZE, SEED, CFG = 4, 64, 11, 7.5
PROMPT, NEGATIVE = "a photo of a cat", "blurry"


@pytest.fixture(scope="module")
def sd():
    pipe = tiny_pipeline()
    base = dict(pipe.scheduler.config)
    cond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [PROMPT], 1)
    uncond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [NEGATIVE], 1)
    return pipe, base, cond, uncond


def cell(sampler, **axes) -> Cell:
    return Cell(TINY, AUTO, get_sampler(sampler).name, STEPS, CFG, 1, SEED, PROMPT, NEGATIVE, SIZE, SIZE, **axes)


def reference(sd, sampler, schedule="Automatic", step_args=None, latents_from=None, **call) -> np.ndarray:
    pipe, base, cond, uncond = sd
    scheduler = build_scheduler(get_sampler(sampler), base, [SEED], get_schedule(schedule))
    if step_args:
        scheduler.step = functools.partial(scheduler.step, **step_args)
    pipe.scheduler = scheduler
    generator = torch.Generator("cpu").manual_seed(SEED)
    if latents_from is not None:
        call["latents"] = latents_from(generator)
    out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS, guidance_scale=CFG,
               generator=generator, height=SIZE, width=SIZE, output_type="pil", **call)
    return np.asarray(out.images[0])


def sdexp_image(c: Cell) -> np.ndarray:
    return render_cells([c])[c]


@pytest.mark.parametrize("sampler, schedule", [
    ("dpmpp_2m", "Beta"),
    *(pytest.param(*p, marks=pytest.mark.slow) for p in [
        ("euler", "Karras"), ("euler", "Exponential"), ("dpmpp_2m", "Karras"), ("euler_a", "SGM Uniform"),
        ("ddim", "Uniform")])])
def test_schedule_matches_pipeline(sd, sampler, schedule):
    image = sdexp_image(cell(sampler, schedule=schedule))
    assert max_diff(image, reference(sd, sampler, schedule)) <= 1
    assert max_diff(image, sdexp_image(cell(sampler))) > 0, "the schedule changed nothing"


@pytest.mark.slow
def test_eta_matches_pipeline(sd):
    image = sdexp_image(cell("ddim", eta=0.7))
    assert max_diff(image, reference(sd, "ddim", eta=0.7)) <= 1
    assert max_diff(image, sdexp_image(cell("ddim"))) > 0


@pytest.mark.parametrize("args", [dict(s_churn=1.5, s_tmin=1.0, s_tmax=10.0),
                                  pytest.param(dict(s_churn=1.5), marks=pytest.mark.slow),
                                  pytest.param(dict(s_churn=1.5, s_noise=1.05), marks=pytest.mark.slow)])
def test_sigma_settings_match_euler_step(sd, args):
    image = sdexp_image(cell("euler", **args))
    assert max_diff(image, reference(sd, "euler", step_args=args)) <= 1
    assert max_diff(image, sdexp_image(cell("euler"))) > 0


def a1111_slerp(val, low, high):
    """A1111's slerp (modules/rng.py), on one image's (C, H, W) noise, norms along dim 1."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_2m"])
def test_variation_seed_matches_pipeline_with_slerped_latents(sd, sampler):
    shape = (4, SIZE // 8, SIZE // 8)

    def latents(generator):
        noise = torch.randn((1, *shape), generator=generator)[0]        # the seed's noise, advancing it
        sub = torch.randn((1, *shape), generator=torch.Generator("cpu").manual_seed(5))[0]
        return a1111_slerp(0.3, noise, sub)[None]

    image = sdexp_image(cell(sampler, subseed=5, subseed_strength=0.3))
    assert max_diff(image, reference(sd, sampler, latents_from=latents)) <= 1
    assert max_diff(image, sdexp_image(cell(sampler))) > 0
    full = sdexp_image(cell(sampler, subseed=5, subseed_strength=1.0))
    alone = sdexp_image(Cell(TINY, AUTO, get_sampler(sampler).name, STEPS, CFG, 1, 5, PROMPT, NEGATIVE, SIZE, SIZE))
    if sampler == "dpmpp_2m":     # deterministic sampler: strength 1 is the variation seed's initial noise
        assert max_diff(full, alone) <= 1
@pytest.mark.slow
def test_rng_gpu_on_the_cpu_is_the_cpu_stream():
    assert max_diff(sdexp_image(cell("euler_a", rng="gpu")), sdexp_image(cell("euler_a"))) == 0


@pytest.mark.gpu
def test_rng_gpu_draws_on_the_device():
    pipe = tiny_pipeline().to("cuda")
    c = cell("euler_a", rng="gpu")
    ours = render_cells([c], batch_size=1, device="cuda")[c]
    cond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [PROMPT], 1)
    uncond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [NEGATIVE], 1)
    pipe.scheduler = build_scheduler(get_sampler("euler_a"), dict(pipe.scheduler.config), [SEED])
    out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS, guidance_scale=CFG,
               generator=torch.Generator("cuda").manual_seed(SEED), height=SIZE, width=SIZE, output_type="pil")
    assert max_diff(ours, np.asarray(out.images[0])) <= 1
