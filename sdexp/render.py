"""The render engine: work units that do each piece of work once.

cells -> by model (each loaded once) -> batches of trajectories (one denoise per trajectory,
prompt encodings cached per clip skip) -> one decode per VAE of the sweep -> PNG + rows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .denoise import decode, denoise
from .encode import encode_prompts
from .metadata import a1111_parameters
from .models import LoadedModel, ModelCache, load_model
from .plan import Cell
from .samplers import build_scheduler, get_sampler


@dataclass
class Batch:
    """Trajectories denoised together: same model, sampler, steps, size and guidance on/off."""
    model: object
    trajectories: list[list[Cell]]   # each inner list: the cells (one per VAE) sharing a trajectory

    @property
    def lead(self) -> list[Cell]:
        return [t[0] for t in self.trajectories]


def _batch_key(cell: Cell) -> tuple:
    return (cell.sampler, cell.steps, cell.width, cell.height, cell.cfg > 1)


def plan_batches(cells: list[Cell], batch_size: int) -> list[Batch]:
    """Group cells into batches, models in order of first appearance so none loads twice."""
    trajectories: dict[tuple, list[Cell]] = {}
    for c in cells:
        trajectories.setdefault(c.trajectory, []).append(c)
    models = list(dict.fromkeys(c.model for c in cells))
    batches = []
    for model in models:
        trajs = [t for t in trajectories.values() if t[0].model == model]
        keys = list(dict.fromkeys(_batch_key(t[0]) for t in trajs))
        for key in keys:
            same = [t for t in trajs if _batch_key(t[0]) == key]
            for i in range(0, len(same), batch_size):
                batches.append(Batch(model, same[i:i + batch_size]))
    return batches


class EncodingCache:
    """Prompt embeddings keyed by text encoder, text and clip skip."""

    def __init__(self):
        self._cache: dict[tuple, torch.Tensor] = {}

    def get(self, model: LoadedModel, texts: list[str], clip_skip: int) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if (model.spec, t, clip_skip) not in self._cache]
        if missing:
            embs = encode_prompts(model.tokenizer, model.text_encoder, missing, clip_skip)
            for t, e in zip(missing, embs):
                self._cache[(model.spec, t, clip_skip)] = e
        return torch.stack([self._cache[(model.spec, t, clip_skip)] for t in texts])

    def drop_other_models(self, keep) -> None:
        self._cache = {k: v for k, v in self._cache.items() if k[0] == keep}


def batch_embeddings(enc: EncodingCache, model: LoadedModel, cells: list[Cell]):
    cond = torch.cat([enc.get(model, [c.prompt], c.clip_skip) for c in cells])
    if not cells[0].cfg > 1:
        return cond, None
    uncond = torch.cat([enc.get(model, [c.negative_prompt], c.clip_skip) for c in cells])
    return cond, uncond


def png_with_parameters(array, text: str) -> Image.Image:
    image = Image.fromarray(array)
    info = PngInfo()
    info.add_text("parameters", text)
    image.info["pnginfo"] = info
    return image


def render(cells: list[Cell], cache: ModelCache, *, batch_size: int, device: torch.device,
           dtype: torch.dtype) -> Iterator[list[dict]]:
    """Render cells; yields, per batch and VAE, one dict per image: cell, image, array and facts."""
    enc = EncodingCache()
    for batch in plan_batches(cells, batch_size):
        model = cache.model(batch.model, lambda spec: load_model(spec, device, dtype))
        enc.drop_other_models(model.spec)
        lead = batch.lead
        sampler = get_sampler(lead[0].sampler)
        t0 = time.perf_counter()
        cond, uncond = batch_embeddings(enc, model, lead)
        scheduler = build_scheduler(sampler, model.scheduler_config, [c.seed for c in lead])
        generators = [torch.Generator("cpu").manual_seed(c.seed) for c in lead]
        latents = denoise(model.unet, scheduler, cond, uncond, [c.cfg for c in lead], generators,
                          lead[0].steps, lead[0].height, lead[0].width)
        per_image = (time.perf_counter() - t0) / len(lead)
        vaes = list(dict.fromkeys(c.vae for t in batch.trajectories for c in t))
        for vae_spec in vaes:
            t1 = time.perf_counter()
            vae, vae_source, vae_hash = cache.vae(vae_spec, model)
            picks = [(i, c) for i, t in enumerate(batch.trajectories) for c in t if c.vae == vae_spec]
            arrays = decode(vae, latents[[i for i, _ in picks]])
            decode_each = (time.perf_counter() - t1) / len(picks)
            out = []
            for (i, cell), array in zip(picks, arrays):
                text = a1111_parameters(
                    prompt=cell.prompt, negative_prompt=cell.negative_prompt, steps=cell.steps,
                    sampler=cell.sampler, cfg=cell.cfg, seed=cell.seed, width=cell.width, height=cell.height,
                    model=cell.model.name, model_hash=model.hash, vae=cell.vae.name, vae_hash=vae_hash,
                    clip_skip=cell.clip_skip)
                out.append({
                    "cell": cell, "image": png_with_parameters(array, text), "array": array,
                    "model_source": model.source, "model_hash": model.hash, "vae_source": vae_source,
                    "vae_hash": vae_hash, "scheduler": sampler.describe(), "seconds": per_image + decode_each,
                    "batch_size": len(lead), "batch_index": i,
                })
            yield out
