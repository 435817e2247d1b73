"""The render engine: work units that do each piece of work once.

cells -> by model (each loaded once) -> batches of trajectories (one denoise per trajectory,
prompt encodings cached per clip skip) -> one decode per VAE of the sweep -> PNG + rows.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .denoise import decode, denoise
from .embeddings import embedding_hash, text_for_encoder
from .encode import encode_prompts
from .img2img import encode_init, image_tensor
from .sdxl import AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE, added_cond, encode_prompts_sdxl
from .hashing import safetensors_data_sha256
from .lora import activate_lora, lora_touches_text_encoder
from .metadata import a1111_parameters
from .batching import run_split_on_oom
from .models import LoadedModel, ModelCache, load_model, runs_guidance
from .cell import Cell, digest
from .samplers import STEP_ARGUMENTS, build_scheduler, get_sampler, get_schedule
from .stages import timed


@dataclass
class Batch:
    """Trajectories denoised together: same model, sampler, steps, size and guidance on/off."""
    model: object
    trajectories: list[list[Cell]]   # each inner list: the cells (one per VAE) sharing a trajectory

    @property
    def lead(self) -> list[Cell]:
        return [t[0] for t in self.trajectories]


def plan_batches(cells: list[Cell], batch_size: int) -> list[Batch]:
    """Group cells into batches, models in order of first appearance so none loads twice."""
    trajectories: dict[tuple, list[Cell]] = {}
    for c in cells:
        trajectories.setdefault(c.trajectory, []).append(c)
    models = list(dict.fromkeys(c.model for c in cells))
    batches = []
    for model in models:
        trajs = [t for t in trajectories.values() if t[0].model == model]
        by_key: dict[tuple, list] = {}
        for t in trajs:
            by_key.setdefault(t[0].batch_key, []).append(t)
        for same in by_key.values():
            for i in range(0, len(same), batch_size):
                batches.append(Batch(model, same[i:i + batch_size]))
    return batches


class EncodingCache:
    """Prompt embeddings keyed by model, text-encoder state (a LoRA that touches it), clip skip and text.

    SDXL entries hold (embeddings, pooled); its empty negative prompt is zeros, as A1111 makes it, where
    the model's config says so (force_zeros_for_empty_prompt: SDXL base, not the refiner)."""

    def __init__(self, warn=None):
        self._cache: dict[tuple, tuple] = {}
        self._checked: set[str] = set()
        self._warn = warn or (lambda text: print(f"sdexp: warning: {text}", file=sys.stderr))

    def _check_length(self, tokenizer, texts: list[str]) -> None:
        """Warn once per text that the text encoder reads only in part (CLIP takes 77 tokens, start and
        end included; AUTOMATIC1111 encodes longer prompts in 75-token chunks, which sdexp does not)."""
        limit = tokenizer.model_max_length
        for text in texts:
            if text in self._checked:
                continue
            self._checked.add(text)
            n = len(tokenizer(text, truncation=False).input_ids)
            if n > limit:
                shown = text if len(text) <= 60 else text[:57] + "..."
                self._warn(f"prompt {shown!r} is {n - 2} tokens; the text encoder reads the first {limit - 2} "
                           f"and ignores the rest (A1111 would encode it in 75-token chunks)")

    def get(self, model: LoadedModel, texts: list[str], clip_skip: int, state=None,
            negative: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        sdxl = model.family == "sdxl"
        key = (model.spec, state, clip_skip, negative and sdxl)
        missing = [t for t in dict.fromkeys(texts) if key + (t,) not in self._cache]
        if missing:
            self._check_length(model.tokenizer or model.tokenizer_2, missing)
            if sdxl:      # both text encoders, or text_encoder_2 alone (a refiner)
                pairs = [(t, e) for t, e in ((model.tokenizer, model.text_encoder),
                                             (model.tokenizer_2, model.text_encoder_2)) if e is not None]
                embs, pooled = encode_prompts_sdxl(*zip(*pairs), missing, clip_skip,
                                                   zero_empty=negative and model.zero_empty)
            else:
                embs, pooled = encode_prompts(model.tokenizer, model.text_encoder, missing, clip_skip), None
            for i, t in enumerate(missing):
                self._cache[key + (t,)] = (embs[i], None if pooled is None else pooled[i])
        found = [self._cache[key + (t,)] for t in texts]
        return (torch.stack([e for e, _ in found]),
                torch.stack([p for _, p in found]) if sdxl else None)

    def drop_other_models(self, keep) -> None:
        self._cache = {k: v for k, v in self._cache.items() if k[0] == keep}


def guided(model: LoadedModel, cell: Cell) -> bool:
    """Classifier-free guidance runs for CFG > 1, except on LCM-distilled UNets (guidance is embedded)."""
    return runs_guidance(cell.cfg, getattr(model.unet.config, "time_cond_proj_dim", None) is not None)


def batch_embeddings(enc: EncodingCache, model: LoadedModel, cells: list[Cell], size: tuple | None = None) -> dict:
    """The denoise's conditioning: cond and uncond embeddings (uncond None without guidance) and, for
    SDXL, the added conditions of each. The batch shares one LoRA state and one size ((width, height),
    default the cells' own; a hires pass gives its target size)."""
    width, height = size or (cells[0].width, cells[0].height)
    stack = cells[0].lora_stack
    state = stack if lora_touches_text_encoder(model, stack) else None

    def embed(texts_of, negative=False):
        parts = [enc.get(model, [text_for_encoder(model, c.embedding, c.embedding_token, texts_of(c))],
                         c.clip_skip, state, negative) for c in cells]
        embeds = torch.cat([e for e, _ in parts])
        pooled = torch.cat([p for _, p in parts]) if model.family == "sdxl" else None
        aesthetic = (NEGATIVE_AESTHETIC_SCORE if negative else AESTHETIC_SCORE) if model.aesthetic else None
        return embeds, (None if pooled is None else added_cond(pooled, height, width, aesthetic))

    cond, added = embed(lambda c: c.prompt)
    out = {"cond": cond, "uncond": None, "added_cond": added, "added_uncond": None}
    if guided(model, cells[0]):
        out["uncond"], out["added_uncond"] = embed(lambda c: c.negative_prompt, negative=True)
    return out


def png_with_parameters(array, text: str) -> Image.Image:
    image = Image.fromarray(array)
    info = PngInfo()
    info.add_text("parameters", text)
    image.info["pnginfo"] = info
    return image


def _batch_id(cells: list[Cell]) -> str:
    return digest([c.image_id for c in cells])


def _denoise_cells(model: LoadedModel, enc: EncodingCache, cells: list[Cell], vae_of, denoising_ends=()):
    """One denoise for a list of trajectories (given by their lead cells), fresh generators each try;
    with `denoising_ends`, the latents at each of those points (sdexp.refiner)."""
    lead = cells[0]
    sampler = get_sampler(lead.sampler)
    activate_lora(model, lead.lora_stack)
    with timed("encode"):
        emb = batch_embeddings(enc, model, cells)
    scheduler = build_scheduler(sampler, model.scheduler_config, [c.seed for c in cells], get_schedule(lead.schedule))
    generators = [torch.Generator(noise_device(lead, model)).manual_seed(c.seed) for c in cells]
    variations = [(c.subseed, c.subseed_strength) if c.subseed_strength else None for c in cells]
    init = _init_latents(cells, generators, vae_of) if lead.init_image else None
    return denoise(model.unet, scheduler, emb["cond"], emb["uncond"], [c.cfg for c in cells], generators,
                   lead.steps, lead.height, lead.width, init_latents=init, strength=lead.strength,
                   added_cond=emb["added_cond"], added_uncond=emb["added_uncond"], step_args=step_args(lead),
                   variations=variations, denoising_ends=denoising_ends)


def noise_device(cell: Cell, model: LoadedModel) -> str:
    """Where a cell's noise is drawn: the CPU (rng=cpu, reproducible on any device) or the render device
    (rng=gpu, AUTOMATIC1111's default)."""
    return str(model.device) if cell.rng == "gpu" else "cpu"


def step_args(cell: Cell) -> dict:
    """The scheduler-step arguments a cell sets (eta, s_churn, s_tmin, s_tmax, s_noise)."""
    return {k: getattr(cell, k) for k in STEP_ARGUMENTS if getattr(cell, k) is not None}


def _init_latents(cells: list[Cell], generators, vae_of) -> torch.Tensor:
    """img2img: each init image encoded by its cell's VAE, drawing from the cell's generator first."""
    out: list = [None] * len(cells)
    for vae_spec in dict.fromkeys(c.vae for c in cells):
        idx = [i for i, c in enumerate(cells) if c.vae == vae_spec]
        images = torch.cat([image_tensor(cells[i].init_image, cells[i].width, cells[i].height) for i in idx])
        latents = encode_init(vae_of(vae_spec), images, [generators[i] for i in idx])
        for i, lat in zip(idx, latents):
            out[i] = lat
    return torch.stack(out)


def render(cells: list[Cell], cache: ModelCache, *, batch_size: int, device: torch.device,
           dtype: torch.dtype, options: dict | None = None) -> Iterator[list[dict]]:
    """Render cells; yields, per batch and VAE, one dict per image: cell, image, array and facts.
    Models are visited in order of first appearance; two-pass (hires) cells of a model follow its
    one-pass cells and share their first passes (sdexp.two_pass); refiner cells have their base parts
    denoised with their model's other work and their refiner parts at the end (sdexp.refiner)."""
    from .refiner import BaseLatents, base_passes, render_refiner_passes
    from .two_pass import render_two_pass

    enc = EncodingCache()
    options = options or {}
    first = BaseLatents()

    def model_of(spec):
        model = cache.model(spec, lambda s: load_model(s, device, dtype, **options))
        enc.drop_other_models(model.spec)
        return model

    for spec in dict.fromkeys(c.model for c in cells):
        one, plain, two, refined = model_parts(cells, spec)
        for batch in plan_batches(one, batch_size):
            model = model_of(spec)
            by_lead = {t[0]: t for t in batch.trajectories}
            chunks = _timed_chunks(lambda part: _denoise_cells(model, enc, list(part), vae_getter(cache, model)),
                                   batch.lead)
            for lead, latents, seconds in chunks:
                yield from decoded(cache, model, [by_lead[c] for c in lead], latents, seconds)
        if two:
            yield from render_two_pass(model_of(spec), enc, cache, two, batch_size)
        if refined:
            yield from base_passes(model_of(spec), enc, cache, refined, plain, batch_size, first)
    refined = [c for c in cells if c.refined]
    if refined:
        yield from render_refiner_passes(cache, enc, model_of, refined, first, batch_size)


def model_parts(cells: list[Cell], spec) -> tuple[list[Cell], list[Cell], list[Cell], list[Cell]]:
    """The cells of model `spec` by how they render: one-pass cells, the base-alone cells whose
    denoise also serves refiner cells (refiner=none beside refiners), two-pass (hires) cells, and
    refiner cells."""
    mine = [c for c in cells if c.model == spec]
    refined = [c for c in mine if c.refined]
    bases = {c.first_pass.trajectory for c in refined}
    one = [c for c in mine if not c.two_pass and not c.refined]
    plain = [c for c in one if c.trajectory in bases]
    one = [c for c in one if c.trajectory not in bases]
    return one, plain, [c for c in mine if c.two_pass], refined


def vae_getter(cache: ModelCache, model: LoadedModel):
    """spec -> the loaded VAE (the model's own for source None), from the cache."""
    return lambda spec: cache.vae(spec, model)[0]


@dataclass(frozen=True)
class ModelFacts:
    """What rows and PNG info record of a model (kept for a base model while its refiner runs)."""
    source: str
    hash: str

    @classmethod
    def of(cls, model: LoadedModel) -> ModelFacts:
        return cls(model.source, model.hash)


def decoded(cache: ModelCache, model: LoadedModel, trajectories: list[list[Cell]], latents: torch.Tensor,
            seconds: float, shared_seconds: list[float] | None = None,
            base: ModelFacts | None = None) -> Iterator[list[dict]]:
    """Decode the latents of trajectories (one latent each; each a list of cells, one per VAE): per VAE,
    one list of items. `shared_seconds[i]`: earlier work of trajectory i counted into each of its images.
    Refined latents: `model` is the refiner (its own VAE decodes where a cell names none, as diffusers'
    refiner pipeline decodes) and `base` the facts of the base model."""
    lead = [t[0] for t in trajectories]
    sampler = get_sampler(lead[0].sampler)
    per_image = seconds / sum(len(t) for t in trajectories)   # the denoise, shared by its decodes
    for vae_spec in dict.fromkeys(c.vae for t in trajectories for c in t):
        vae, vae_source, vae_hash = cache.vae(vae_spec, model)
        picks = [(i, c) for i, t in enumerate(trajectories) for c in t if c.vae == vae_spec]
        flags: list[str] = []     # image health, one entry per decoded image
        pixels: list = []         # the images as uint8 (3, H, W) tensors on the render device (CLIP scoring)
        out = []
        for part, arrays, decode_seconds in _timed_chunks(
                lambda part: decode(vae, latents[[i for i, _ in part]], flags, pixels), picks, "decode"):
            for (i, cell), array in zip(part, arrays):
                earlier = shared_seconds[i] / len(trajectories[i]) if shared_seconds else 0.0
                out.append(_item(cell, array, base or ModelFacts.of(model), sampler, vae_source, vae_hash,
                                 refiner=ModelFacts.of(model) if base else None,
                                 image_flags=flags[len(out)], pixels=pixels[len(out)],
                                 seconds=earlier + per_image + decode_seconds / len(part),
                                 batch_size=len(lead), batch_index=i, batch_id=_batch_id(lead)))
        yield out


def _timed_chunks(fn, items, stage: str = "denoise"):
    """run_split_on_oom with the wall time of each chunk: [(items, result, seconds)]; the chunks'
    time counts as `stage` of the sweep's stage clock (sdexp.stages)."""
    times = []

    def run(part):
        t0 = time.perf_counter()
        with timed(stage):
            result = fn(part)
        times.append(time.perf_counter() - t0)
        return result

    chunks = run_split_on_oom(run, items)
    return [(part, result, t) for (part, result), t in zip(chunks, times)]


def _item(cell: Cell, array, model: ModelFacts, sampler, vae_source: str, vae_hash: str,
          refiner: ModelFacts | None = None, **facts) -> dict:
    lora_hashes = {spec: safetensors_data_sha256(spec.source) for spec, _ in cell.lora_stack}
    emb_hash = embedding_hash(cell.embedding) if cell.embedding else None
    text = a1111_parameters(
        cell, model_hash=model.hash, vae_hash=vae_hash, refiner_hash=refiner.hash if refiner else None,
        loras=[(spec.name, weight, lora_hashes[spec]) for spec, weight in cell.lora_stack],
        embedding=(cell.embedding.name, cell.embedding_token, emb_hash) if cell.embedding else None)
    return {"cell": cell, "image": png_with_parameters(array, text), "array": array,
            "model_source": model.source, "model_hash": model.hash, "vae_source": vae_source,
            "vae_hash": vae_hash, "scheduler": sampler.describe(get_schedule(cell.schedule)),
            "lora_hashes": lora_hashes,
            "refiner_source": refiner.source if refiner else None, "refiner_hash": refiner.hash if refiner else None,
            "embedding_hash": emb_hash, **facts}
