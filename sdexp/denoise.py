"""The denoising loop of StableDiffusionPipeline.__call__, batched, with one guidance scale per sample.

Written against diffusers' own loop so that a cell rendered alone equals the pipeline's image
for the same components, embeddings, steps, guidance scale and generator.
"""
from __future__ import annotations

import inspect

import torch
from diffusers.utils.torch_utils import randn_tensor


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """AUTOMATIC1111's variation-seed blend (modules/rng.py `slerp`, after the PyTorch forum's slerp for
    generative sampling): spherical interpolation of two noise tensors of one image, shaped (C, H, W),
    with norms taken along dim 1 as A1111 takes them; nearly parallel noises are mixed linearly."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def draw_noise(shape, generators, device, dtype, variations=None) -> torch.Tensor:
    """One noise tensor per generator (diffusers' randn_tensor, on each generator's device); where
    `variations[i]` is (subseed, strength), the subseed's noise (a fresh generator on the same device)
    is slerped in as A1111's Variation seed does."""
    noise = randn_tensor(shape, generator=list(generators), device=device, dtype=dtype)
    for i, variation in enumerate(variations or ()):
        if variation:
            subseed, strength = variation
            sub = torch.Generator(generators[i].device).manual_seed(int(subseed))
            other = randn_tensor((1, *shape[1:]), generator=sub, device=device, dtype=dtype)[0]
            noise[i] = slerp(strength, noise[i], other)
    return noise


def initial_latents(unet, scheduler, generators, height: int, width: int, dtype, device,
                    variations=None) -> torch.Tensor:
    shape = (len(generators), unet.config.in_channels, height // 8, width // 8)
    return draw_noise(shape, generators, device, dtype, variations) * scheduler.init_noise_sigma


def step_kwargs(scheduler, generators, step_args: dict | None = None) -> dict:
    """Keyword arguments of `scheduler.step`: eta (0 unless given, as the pipeline passes it), the
    generators, and the step arguments a cell sets (s_churn, ...; planning checked `step` takes them)."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = 0.0
    if "generator" in params:
        kwargs["generator"] = list(generators)
    kwargs.update(step_args or {})
    return kwargs


def noised_init(scheduler, init_latents, generators, steps: int, strength: float, variations=None):
    """img2img's start: the timesteps left after strength, and the init latents noised to the first."""
    run = min(int(steps * strength), steps)
    start = (steps - run) * scheduler.order
    timesteps = scheduler.timesteps[start:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    noise = draw_noise(init_latents.shape, generators, init_latents.device, init_latents.dtype, variations)
    latent_timestep = timesteps[:1].repeat(init_latents.shape[0])
    return timesteps, scheduler.add_noise(init_latents, noise, latent_timestep)


def _cutoff(scheduler, fraction: float) -> int:
    """The train timestep where a fraction of the denoise ends, as SDXL's pipelines round it."""
    n = scheduler.config.num_train_timesteps
    return int(round(n - fraction * n))


def steps_before(scheduler, fraction: float) -> int:
    """How many of the scheduler's timesteps a base pass with denoising_end=fraction runs
    (StableDiffusionXLPipeline: those at or above the cutoff)."""
    cutoff = _cutoff(scheduler, fraction)
    return sum(1 for t in scheduler.timesteps if t >= cutoff)


def start_after(scheduler, fraction: float) -> int:
    """The index of the first timestep a refiner pass with denoising_start=fraction runs
    (StableDiffusionXLImg2ImgPipeline.get_timesteps: those below the cutoff, one more for a
    second-order scheduler that would otherwise start between its two evaluations)."""
    run = int((scheduler.timesteps < _cutoff(scheduler, fraction)).sum().item())
    if scheduler.order == 2 and run % 2 == 0:
        run += 1
    return len(scheduler.timesteps) - run


def guidance_embedding(unet, guidance: list[float], device, dtype) -> torch.Tensor | None:
    """LCM-distilled UNets take (guidance scale - 1) as a timestep condition instead of running CFG."""
    dim = getattr(unet.config, "time_cond_proj_dim", None)
    if dim is None:
        return None
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

    w = torch.tensor([g - 1 for g in guidance])
    return StableDiffusionPipeline.get_guidance_scale_embedding(None, w, embedding_dim=dim).to(device, dtype)


@torch.no_grad()
def denoise(unet, scheduler, cond: torch.Tensor, uncond: torch.Tensor | None, guidance: list[float],
            generators: list[torch.Generator], steps: int, height: int, width: int,
            init_latents: torch.Tensor | None = None, strength: float | None = None,
            added_cond: dict | None = None, added_uncond: dict | None = None,
            step_args: dict | None = None, variations: list | None = None,
            denoising_start: float | None = None, denoising_ends: tuple[float, ...] = ()):
    """Denoise one batch; returns latents (not yet scaled for the VAE).

    `uncond` is None when no sample needs classifier-free guidance (guidance scale <= 1), which
    skips the unconditional UNet pass as diffusers does. With `init_latents` (img2img) only the last
    int(steps * strength) steps run, from those latents noised to the first of them, as in
    StableDiffusionImg2ImgPipeline. A UNet with `time_cond_proj_dim` (an LCM-distilled checkpoint)
    gets the guidance scale as an embedding, as diffusers gives it.

    SDXL: `added_cond` / `added_uncond` are the UNet's added conditions of the prompt and of the
    negative prompt ({"text_embeds": (B, P), "time_ids": (B, 6)}, see sdexp.sdxl.added_cond),
    batched [uncond, cond] like the embeddings.

    `step_args` go to every `scheduler.step` (eta, s_churn, ...); `variations` (one (subseed, strength)
    or None per sample) blend a variation seed's noise into the initial noise (see draw_noise).

    The SDXL refiner's two parts (diffusers' denoising_end / denoising_start): with `denoising_ends`
    the loop runs until the last of them and returns a list, the latents where each ends, as
    StableDiffusionXLPipeline(denoising_end=e, output_type="latent") would give them (a shorter run is
    a prefix of a longer one: the scheduler and generators see the same calls). With
    `denoising_start`, `init_latents` are such latents and the loop runs the timesteps after it,
    adding no noise, as StableDiffusionXLImg2ImgPipeline does.
    """
    device, dtype = unet.device, cond.dtype
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    if denoising_start is not None:
        start = start_after(scheduler, denoising_start)
        timesteps = timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
        latents = init_latents.to(device, dtype)
    elif init_latents is None:
        latents = initial_latents(unet, scheduler, generators, height, width, dtype, device, variations)
    else:
        timesteps, latents = noised_init(scheduler, init_latents.to(device, dtype), generators, steps, strength,
                                         variations)
    kwargs = step_kwargs(scheduler, generators, step_args)
    embeds = cond if uncond is None else torch.cat([uncond, cond])
    scale = torch.tensor(guidance, device=device, dtype=dtype).view(-1, 1, 1, 1)
    added = added_cond if uncond is None or added_cond is None else \
        {k: torch.cat([added_uncond[k], v]) for k, v in added_cond.items()}
    timestep_cond = guidance_embedding(unet, guidance, device, dtype)
    ends = {e: steps_before(scheduler, e) for e in denoising_ends}
    kept = {n: latents for n in ends.values() if n == 0}
    if ends:
        timesteps = timesteps[:max(ends.values())]
    for i, t in enumerate(timesteps, 1):
        x = latents if uncond is None else torch.cat([latents] * 2)
        x = scheduler.scale_model_input(x, t)
        noise = unet(x, t, encoder_hidden_states=embeds, added_cond_kwargs=added, timestep_cond=timestep_cond,
                     return_dict=False)[0]
        if uncond is not None:
            noise_uncond, noise_text = noise.chunk(2)
            noise = noise_uncond + scale * (noise_text - noise_uncond)
        latents = scheduler.step(noise, t, latents, **kwargs, return_dict=False)[0]
        if i in ends.values():
            kept[i] = latents
    return [kept[n] for n in ends.values()] if ends else latents


@torch.no_grad()
def decode(vae, latents: torch.Tensor, flags: list | None = None, pixels: list | None = None) -> list:
    """Latents -> uint8 HxWx3 numpy arrays, as diffusers' image processor rounds them.
    `flags`, when given, is extended with each image's health flags (sdexp.image_health);
    `pixels` with each image as a uint8 (3, H, W) tensor on the VAE's device (the same values)."""
    latents = latents.to(device=vae.device, dtype=vae.dtype)
    raw = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    quantized = ((raw / 2 + 0.5).clamp(0, 1).float() * 255).round().to(torch.uint8)   # rounded on the device
    arrays = list(quantized.permute(0, 2, 3, 1).contiguous().cpu().numpy())
    if pixels is not None:
        pixels.extend(quantized)
    if flags is not None:
        from .image_health import image_flags

        flags.extend(image_flags(raw, arrays))
    return arrays
