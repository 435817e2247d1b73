"""Two-pass renders (the hires fix): each first pass denoised once, every second pass started from it.

The first pass of a hires cell is the txt2img cell without its hires fields (`Cell.first_pass`), so
every hires variant of it (scale, steps, strength, upscaler, VAE) shares one first-pass trajectory,
batched like any txt2img trajectory. The second passes then run as img2img batches at their target
size (cells sharing model, sampler, steps, size, strength and guidance on/off), one decode per VAE.

Where the second pass's noise comes from: a fresh generator per image, seeded with the image's seed
(on the cell's noise device, with its variation seed blended in as in the first pass), drawn at the
target latent size. That is how AUTOMATIC1111 restarts its RNG for the hires pass, and what a fresh
`torch.Generator().manual_seed(seed)` passed to StableDiffusionImg2ImgPipeline does. After a pixel
upscaler the VAE encode samples its latent from that generator first, as diffusers' img2img does;
after a latent upscaler nothing is encoded and the generator gives the noise alone.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from .cell import Cell
from .denoise import decode, denoise
from .hires import get_upscaler, upscale_image, upscale_latents
from .img2img import array_tensor, encode_init
from .lora import activate_lora
from .models import LoadedModel, ModelCache
from .render import (
    EncodingCache,
    _denoise_cells,
    _timed_chunks,
    batch_embeddings,
    decoded,
    noise_device,
    plan_batches,
    step_args,
    vae_getter,
)
from .samplers import build_scheduler, get_sampler, get_schedule

FIRST_PASSES_PER_ROUND = 256     # first-pass latents kept at once (their second passes run before the next round)


def render_two_pass(model: LoadedModel, enc: EncodingCache, cache: ModelCache, cells: list[Cell],
                    batch_size: int) -> Iterator[list[dict]]:
    """Render two-pass cells of one model: first passes in batches, then their second passes."""
    firsts = list({c.first_pass.trajectory: c.first_pass for c in cells}.values())
    vae_of = vae_getter(cache, model)
    rounds: list[list] = [[]]
    for batch in plan_batches(firsts, batch_size):      # grouped by batch key, so rounds fill batches
        if len(rounds[-1]) >= FIRST_PASSES_PER_ROUND:
            rounds.append([])
        rounds[-1].append(batch)
    for batches in rounds:
        first: dict[tuple, tuple[torch.Tensor, float]] = {}    # trajectory -> (latents, seconds of its share)
        for batch in batches:
            for lead, latents, seconds in _timed_chunks(lambda part: _denoise_cells(model, enc, list(part), vae_of),
                                                        batch.lead):
                for c, lat in zip(lead, latents):
                    first[c.trajectory] = (lat, seconds / len(lead))
        todo = [c for c in cells if c.first_pass.trajectory in first]
        users: dict[tuple, int] = {}
        for c in todo:
            users[c.first_pass.trajectory] = users.get(c.first_pass.trajectory, 0) + 1
        upscaled: dict = {}      # (first-pass trajectory, VAE) -> upscaled image, for pixel upscalers
        for batch in plan_batches(todo, batch_size):
            by_lead = {t[0]: t for t in batch.trajectories}
            for lead, latents, seconds in _timed_chunks(
                    lambda part, first=first, upscaled=upscaled: second_pass(model, enc, list(part), first,
                                                                             upscaled, vae_of), batch.lead):
                trajectories = [by_lead[c] for c in lead]
                shared = [first[c.first_pass.trajectory][1] / users[c.first_pass.trajectory] * len(by_lead[c])
                          for c in lead]
                yield from decoded(cache, model, trajectories, latents, seconds, shared)


def second_pass(model: LoadedModel, enc: EncodingCache, cells: list[Cell], first: dict, upscaled: dict,
                vae_of) -> torch.Tensor:
    """One img2img denoise at the target size for second-pass cells (lead cells of their trajectories)."""
    lead = cells[0]
    width, height = lead.final_size
    activate_lora(model, lead.lora_stack)
    emb = batch_embeddings(enc, model, cells, size=(width, height))
    scheduler = build_scheduler(get_sampler(lead.sampler), model.scheduler_config, [c.seed for c in cells],
                                get_schedule(lead.schedule))
    generators = [torch.Generator(noise_device(c, model)).manual_seed(c.seed) for c in cells]
    variations = [(c.subseed, c.subseed_strength) if c.subseed_strength else None for c in cells]
    init = torch.cat([_init(c, g, first, upscaled, vae_of) for c, g in zip(cells, generators)])
    return denoise(model.unet, scheduler, emb["cond"], emb["uncond"], [c.cfg for c in cells], generators,
                   lead.hires_steps or lead.steps, height, width, init_latents=init, strength=lead.hires_strength,
                   added_cond=emb["added_cond"], added_uncond=emb["added_uncond"], step_args=step_args(lead),
                   variations=variations)


def _init(cell: Cell, generator, first: dict, upscaled: dict, vae_of) -> torch.Tensor:
    """The second pass's start latents (1, C, h, w): the first pass's latents resized (latent upscalers),
    or its decoded image resized and encoded by the cell's VAE (pixel upscalers)."""
    latents = first[cell.first_pass.trajectory][0][None]
    upscaler = get_upscaler(cell.hires_upscaler)
    width, height = cell.final_size
    if upscaler.latent:
        return upscale_latents(latents, width, height, upscaler)
    vae = vae_of(cell.vae)
    key = (cell.first_pass.trajectory, cell.vae, cell.hires_scale, upscaler.name)
    if key not in upscaled:
        upscaled[key] = upscale_image(decode(vae, latents)[0], width, height, upscaler)
    return encode_init(vae, array_tensor(upscaled[key]), [generator])
