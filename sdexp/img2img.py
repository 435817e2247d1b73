"""img2img: init images and the denoising-strength axis.

Strength has the meaning AUTOMATIC1111 and diffusers share: of `steps` scheduler steps, the last
`int(steps * strength)` run, starting from the init image's latents noised to that point. An init
image is resized to the cell's size ("Just resize", Lanczos, as A1111) and encoded by the cell's
VAE, so img2img trajectories are per VAE and are not shared across VAEs as txt2img ones are.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class InitImage:
    name: str                  # the file name, shown in grids and rows
    source: str                # absolute path
    sha256: str


def init_images(value) -> list[InitImage | None]:
    """The init images of a job: [None] for txt2img, one file, or every image of a folder."""
    if value in (None, "", "none", "None"):
        return [None]
    from .hashing import file_sha256

    path = Path(str(value)).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"init_image={str(value)!r}: the folder holds no image "
                             f"({', '.join(IMAGE_SUFFIXES)})")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"init_image={str(value)!r}: no such file or folder ({path.resolve()}); valid: an "
                         f"image file ({', '.join(IMAGE_SUFFIXES)}), a folder of them, or null for txt2img")
    out = []
    for f in files:
        _check_image(f)
        out.append(InitImage(f.name, str(f.resolve()), file_sha256(f)))
    return out


def _check_image(path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # noqa: BLE001  (Pillow raises many types for a bad file)
        raise ValueError(f"init_image={str(path)!r} is not a readable image ({e})") from None


def steps_run(steps: int, strength: float) -> int:
    """How many denoising steps img2img runs (diffusers' get_timesteps, A1111's t_enc)."""
    return min(int(steps * strength), steps)


def image_tensor(init: InitImage, width: int, height: int) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]: RGB, resized to the cell's size with Lanczos."""
    from PIL import Image

    with Image.open(init.source) as im:
        im = im.convert("RGB")
        if im.size != (width, height):
            im = im.resize((width, height), resample=Image.LANCZOS)
        return array_tensor(im)


def array_tensor(image) -> torch.Tensor:
    """A PIL image or uint8 HxWx3 array as (1, 3, H, W) in [-1, 1], as diffusers' image processor makes it."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2.0 - 1.0


@torch.no_grad()
def encode_init(vae, images: torch.Tensor, generators) -> torch.Tensor:
    """VAE latents of init images, sampled with each image's generator as diffusers' img2img does."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    images = images.to(device=vae.device, dtype=vae.dtype)
    latents = [retrieve_latents(vae.encode(images[i:i + 1]), generator=g) for i, g in enumerate(generators)]
    return torch.cat(latents) * vae.config.scaling_factor
