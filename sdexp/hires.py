"""Hires fix: the upscalers and the resize between a txt2img pass and its img2img pass.

AUTOMATIC1111's semantics: the first pass renders at width x height; its result is upscaled by
`hires.scale` to int(width * scale) x int(height * scale) and an img2img pass at that size runs
with `hires.strength` as its denoising strength (`hires.steps` scheduler steps, 0 = the job's steps,
of which the last int(steps * strength) run, as StableDiffusionImg2ImgPipeline counts them).

Latent upscalers resize the first pass's latents (no VAE decode between passes), with the
interpolation modes A1111 lists (modules/shared_items.py `latent_upscale_modes`). Pixel upscalers
decode the first pass with the cell's VAE, resize the 8-bit image with Pillow (A1111's Lanczos and
Nearest upscalers) and encode it again with that VAE.

Learned upscalers (ESRGAN, RealESRGAN, SwinIR, ...) are not offered yet. basicsr/realesrgan read
`.pth` pickles and are unmaintained since 2022; spandrel (on PyPI, kept up by ComfyUI's authors)
loads these architectures from local .safetensors files and would be the library to use.

Light to import (no torch at module level): the axis registry checks values with it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Upscaler:
    name: str              # A1111's name (grids, rows, PNG info)
    alias: str             # the plain config value
    latent: bool           # resizes latents (True) or decoded pixels (False)
    mode: str              # torch interpolate mode, or the Pillow filter name
    antialias: bool = False


UPSCALERS: tuple[Upscaler, ...] = (
    Upscaler("Latent", "latent", True, "bilinear"),
    Upscaler("Latent (antialiased)", "latent_antialiased", True, "bilinear", True),
    Upscaler("Latent (bicubic)", "latent_bicubic", True, "bicubic"),
    Upscaler("Latent (bicubic antialiased)", "latent_bicubic_antialiased", True, "bicubic", True),
    Upscaler("Latent (nearest)", "latent_nearest", True, "nearest"),
    Upscaler("Latent (nearest-exact)", "latent_nearest_exact", True, "nearest-exact"),
    Upscaler("Lanczos", "lanczos", False, "LANCZOS"),
    Upscaler("Nearest", "nearest", False, "NEAREST"),
)
_BY_KEY = {k.lower(): u for u in UPSCALERS for k in (u.name, u.alias)}


def get_upscaler(value) -> Upscaler:
    """An upscaler by A1111 name or alias (any case), or a ValueError naming the valid choices."""
    found = _BY_KEY.get(str(value).strip().lower())
    if found is None:
        valid = ", ".join(f"{u.alias} ({u.name})" for u in UPSCALERS)
        raise ValueError(f"hires.upscaler={value!r} is not a known upscaler; valid: {valid}")
    return found


def check_upscaler(value) -> str | None:
    try:
        get_upscaler(value)
    except ValueError as e:
        return str(e).split(" ", 1)[1]
    return None


def target_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The second pass's size, as A1111 computes it: int(width * scale) x int(height * scale)."""
    return int(width * scale), int(height * scale)


def size_problem(width: int, height: int, scale: float) -> str | None:
    """Why a scale gives a size the UNet cannot take (not a multiple of 8), or None."""
    w, h = target_size(width, height, scale)
    if w % 8 == 0 and h % 8 == 0:
        return None
    return (f"hires.scale={scale:g} upscales {width}x{height} to {w}x{h}, which is not a multiple of 8; valid: "
            f"a scale giving multiples of 8 (e.g. 1.5 or 2 for this size)")


def upscale_latents(latents, width: int, height: int, upscaler: Upscaler):
    """Latents (B, C, h, w) resized to the latent size of width x height, as A1111's latent upscalers."""
    import torch.nn.functional as F

    antialias = upscaler.antialias and upscaler.mode in ("bilinear", "bicubic")
    return F.interpolate(latents, size=(height // 8, width // 8), mode=upscaler.mode, antialias=antialias)


def upscale_image(array, width: int, height: int, upscaler: Upscaler):
    """A decoded uint8 HxWx3 image resized with Pillow to width x height; returns a PIL image."""
    from PIL import Image

    return Image.fromarray(array).resize((width, height), resample=getattr(Image.Resampling, upscaler.mode))
