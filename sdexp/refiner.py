"""The SDXL refiner: the base model denoises until `refiner_switch`, the refiner model runs the rest.

diffusers' semantics, which the parity tests check: StableDiffusionXLPipeline(denoising_end=switch,
output_type="latent") and then StableDiffusionXLImg2ImgPipeline(image=those latents,
denoising_start=switch). Both passes are set up for the job's steps; the base runs the timesteps at
or above the switch's cutoff, the refiner the ones below it, starting from the base's latents with no
noise added. The refiner's generator is fresh, seeded with the image's seed (only samplers that add
noise while stepping draw from it), on the cell's noise device. The refiner conditions on its own
text encoder(s) and, if its config says `requires_aesthetics_score`, on aesthetic scores 6.0 (prompt)
and 2.5 (negative prompt), diffusers' defaults. AUTOMATIC1111 instead swaps the model inside one
sampler run (the sampler's state and RNG carry on), so its refined images differ in detail.

Sharing: a refiner cell's first pass is its base's full txt2img trajectory (`Cell.first_pass`). One
base denoise serves every refiner and every switch value of it: it runs as far as the latest switch
its batch needs and keeps the latents at each switch point (sdexp.denoise). Those latents wait on the
CPU while the engine does the rest of the base models' work; the refiner passes then run at the end,
each refiner loaded once, in batches of cells sharing refiner, switch, sampler, steps and size.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch

from .cell import Cell
from .denoise import denoise
from .lora import activate_lora
from .models import LoadedModel, ModelCache
from .render import (
    EncodingCache,
    ModelFacts,
    _denoise_cells,
    _timed_chunks,
    batch_embeddings,
    decoded,
    noise_device,
    plan_batches,
    step_args,
)
from .samplers import build_scheduler, get_sampler, get_schedule

FULL = 1.0       # a "switch" at the end: the whole base denoise (for its refiner=none cells)
# the refiner sees a cell without the base's adapters (LoRAs, an LCM-LoRA act on the base model alone)
_BASE_ONLY = {"lora": None, "lora_weight": None, "extra_loras": None, "lcm_lora": None}


@dataclass
class BaseLatents:
    """First passes of refiner cells: latents at each switch point, kept on the CPU until the refiners run."""
    latents: dict = field(default_factory=dict)     # (first-pass trajectory, switch) -> latents (C, h, w)
    seconds: dict = field(default_factory=dict)     # first-pass trajectory -> seconds of its base denoise
    base: dict = field(default_factory=dict)        # first-pass trajectory -> ModelFacts of its base model
    uses: dict = field(default_factory=dict)        # first-pass trajectory -> refiner cells starting from it

    def share(self, trajectory: tuple, images: int) -> float:
        """Seconds of a base denoise counted into `images` of the images it serves."""
        return self.seconds[trajectory] / self.uses[trajectory] * images


def base_passes(model: LoadedModel, enc: EncodingCache, cache: ModelCache, cells: list[Cell], plain: list[Cell],
                batch_size: int, out: BaseLatents) -> Iterator[list[dict]]:
    """Denoise the base part of refiner cells of one model, once per first-pass trajectory. `plain` are
    one-pass cells of those same trajectories (the base alone, refiner=none): their denoise is the same
    one run to the end, so it serves them too, and their images are decoded and yielded here."""
    switches: dict[tuple, set] = {}
    for c in cells:
        switches.setdefault(c.first_pass.trajectory, set()).add(c.refiner_switch)
    for c in plain:
        switches[c.trajectory].add(FULL)
    for c in cells + plain:
        out.uses[c.first_pass.trajectory] = out.uses.get(c.first_pass.trajectory, 0) + 1
    by_trajectory: dict[tuple, list[Cell]] = {}
    for c in plain:
        by_trajectory.setdefault(c.trajectory, []).append(c)
    firsts = list({c.first_pass.trajectory: c.first_pass for c in cells}.values())
    for batch in plan_batches(firsts, batch_size):
        ends = tuple(sorted({s for c in batch.lead for s in switches[c.trajectory]}))
        for lead, kept, seconds in _timed_chunks(
                lambda part, ends=ends: _base_denoise(model, enc, list(part), ends), batch.lead):
            for i, c in enumerate(lead):
                for end, latents in zip(ends, kept):
                    if end in switches[c.trajectory] and end != FULL:
                        out.latents[(c.trajectory, end)] = latents[i].cpu()
                out.seconds[c.trajectory] = seconds / len(lead)
                out.base[c.trajectory] = ModelFacts.of(model)
            done = [i for i, c in enumerate(lead) if c.trajectory in by_trajectory]
            if done:
                trajectories = [by_trajectory[lead[i].trajectory] for i in done]
                shared = [out.share(lead[i].trajectory, len(t)) for i, t in zip(done, trajectories)]
                yield from decoded(cache, model, trajectories, kept[ends.index(FULL)][done], 0.0, shared)


def _base_denoise(model: LoadedModel, enc: EncodingCache, cells: list[Cell], ends: tuple) -> list[torch.Tensor]:
    return _denoise_cells(model, enc, cells, None, denoising_ends=ends)


def render_refiner_passes(cache: ModelCache, enc: EncodingCache, model_of: Callable, cells: list[Cell],
                          first: BaseLatents, batch_size: int) -> Iterator[list[dict]]:
    """The refiner parts of refiner cells whose base parts are in `first`: per refiner, in batches."""
    refiners = list(dict.fromkeys(c.refiner for c in cells))
    for spec in sorted(refiners, key=lambda s: not cache.holds(s)):     # a loaded one (the base itself) first
        mine = [c for c in cells if c.refiner == spec]
        for batch in plan_batches(mine, batch_size):
            refiner = model_of(spec)
            by_lead = {t[0]: t for t in batch.trajectories}
            for lead, latents, seconds in _timed_chunks(
                    lambda part, refiner=refiner: refiner_pass(refiner, enc, list(part), first), batch.lead):
                trajectories = [by_lead[c] for c in lead]
                key = [c.first_pass.trajectory for c in lead]
                shared = [first.share(k, len(t)) for k, t in zip(key, trajectories)]
                yield from decoded(cache, refiner, trajectories, latents, seconds, shared, base=first.base[key[0]])


def refiner_pass(refiner: LoadedModel, enc: EncodingCache, cells: list[Cell], first: BaseLatents) -> torch.Tensor:
    """One denoise on the refiner from the base's latents at the switch (lead cells of their trajectories)."""
    lead = cells[0]
    activate_lora(refiner, ())          # a base model finishing its own denoise: without the base's LoRAs
    seen = [replace(c, model=refiner.spec, **_BASE_ONLY) for c in cells]
    emb = batch_embeddings(enc, refiner, seen)
    scheduler = build_scheduler(get_sampler(lead.sampler), refiner.scheduler_config, [c.seed for c in cells],
                                get_schedule(lead.schedule))
    generators = [torch.Generator(noise_device(c, refiner)).manual_seed(c.seed) for c in cells]
    init = torch.stack([first.latents[(c.first_pass.trajectory, c.refiner_switch)] for c in cells])
    return denoise(refiner.unet, scheduler, emb["cond"], emb["uncond"], [c.cfg for c in cells], generators,
                   lead.steps, lead.height, lead.width, init_latents=init, denoising_start=lead.refiner_switch,
                   added_cond=emb["added_cond"], added_uncond=emb["added_uncond"], step_args=step_args(lead))
