"""The denoising loop of StableDiffusionPipeline.__call__, batched, with one guidance scale per sample.

Written against diffusers' own loop so that a cell rendered alone equals the pipeline's image
for the same components, embeddings, steps, guidance scale and generator.
"""
from __future__ import annotations

import inspect

import torch
from diffusers.utils.torch_utils import randn_tensor


def initial_latents(unet, scheduler, generators, height: int, width: int, dtype, device) -> torch.Tensor:
    shape = (len(generators), unet.config.in_channels, height // 8, width // 8)
    latents = randn_tensor(shape, generator=list(generators), device=device, dtype=dtype)
    return latents * scheduler.init_noise_sigma


def step_kwargs(scheduler, generators, eta: float = 0.0) -> dict:
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = list(generators)
    return kwargs


@torch.no_grad()
def denoise(unet, scheduler, cond: torch.Tensor, uncond: torch.Tensor | None, guidance: list[float],
            generators: list[torch.Generator], steps: int, height: int, width: int) -> torch.Tensor:
    """Denoise one batch; returns latents (not yet scaled for the VAE).

    `uncond` is None when no sample needs classifier-free guidance (guidance scale <= 1), which
    skips the unconditional UNet pass as diffusers does.
    """
    device, dtype = unet.device, cond.dtype
    scheduler.set_timesteps(steps, device=device)
    latents = initial_latents(unet, scheduler, generators, height, width, dtype, device)
    kwargs = step_kwargs(scheduler, generators)
    embeds = cond if uncond is None else torch.cat([uncond, cond])
    scale = torch.tensor(guidance, device=device, dtype=dtype).view(-1, 1, 1, 1)
    for t in scheduler.timesteps:
        x = latents if uncond is None else torch.cat([latents] * 2)
        x = scheduler.scale_model_input(x, t)
        noise = unet(x, t, encoder_hidden_states=embeds, return_dict=False)[0]
        if uncond is not None:
            noise_uncond, noise_text = noise.chunk(2)
            noise = noise_uncond + scale * (noise_text - noise_uncond)
        latents = scheduler.step(noise, t, latents, **kwargs, return_dict=False)[0]
    return latents


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> list:
    """Latents -> uint8 HxWx3 numpy arrays, as diffusers' image processor rounds them."""
    latents = latents.to(device=vae.device, dtype=vae.dtype)
    images = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return [(im * 255).round().astype("uint8") for im in images]
