"""A cell: one image to render, frozen and hashable, holding every axis.

`cell_id` names a grid cell (all settings except seed and prompt); `image_id` names one image (the
grid cell plus prompt and seed). Axes that are off (no LoRA, txt2img, ...) stay out of `cell_id`,
so cells that do not use them keep the ids they had before those axes existed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from .embeddings import EmbeddingSpec, strip_token
from .img2img import InitImage
from .lora import LoraSpec
from .models import ModelSpec, VaeSpec


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    vae: VaeSpec
    sampler: str                # AUTOMATIC1111 name
    steps: int
    cfg: float
    clip_skip: int
    seed: int
    prompt: str                 # as rendered: after prompt S/R; an embedding's trigger token kept
    negative_prompt: str
    width: int
    height: int
    # Axes that are off by default; a cell with all of them off has the identity it always had.
    lora: LoraSpec | None = None
    lora_weight: float | None = None        # None without a LoRA
    embedding: EmbeddingSpec | None = None
    embedding_token: str | None = None      # the trigger token; removed from the text when embedding is None
    init_image: InitImage | None = None     # img2img when set
    strength: float | None = None           # denoising strength; None for txt2img
    prompt_sr: str | None = None            # the Prompt S/R value this cell's prompts were made with
    prompt_template: str | None = None      # the prompt before search/replace
    lcm_lora: LoraSpec | None = None        # the LCM-LoRA `sampler=lcm` brings (config lcm.lora), weight 1
    extra_loras: tuple | None = None        # ((LoraSpec, weight), ...) applied under every value of the lora axis

    def axis(self, name: str):
        """The value of an axis as grids and rows show it (files by name)."""
        if name == "size":
            return self.size
        value = getattr(self, name)
        return value.name if hasattr(value, "name") and hasattr(value, "source") else value

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def cell_id(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k not in OPTIONAL_FIELDS or v is not None}
        for k in ("seed", "prompt", "prompt_template"):
            d.pop(k, None)
        return digest(d)

    @property
    def image_id(self) -> str:
        return digest([self.cell_id, self.prompt, self.seed])

    @property
    def trajectory(self) -> tuple:
        """Everything the denoise depends on: txt2img cells differing only in VAE share one trajectory
        (img2img ones do not: the VAE encodes their init image)."""
        return (self.model, self.sampler, self.steps, self.cfg, self.clip_skip, self.seed, self.prompt,
                self.negative_prompt, self.width, self.height, self.lora, self.lora_weight, self.embedding,
                self.embedding_token, self.init_image, self.strength, self.vae if self.init_image else None,
                self.lcm_lora, self.extra_loras)

    @property
    def lora_stack(self) -> tuple:
        """The active (LoRA, weight) pairs: extra_loras, the lora axis, then an LCM-LoRA at weight 1."""
        return tuple(self.extra_loras or ()) + tuple(
            (spec, weight) for spec, weight in ((self.lora, self.lora_weight), (self.lcm_lora, 1.0)) if spec is not None)

    @property
    def scoring_prompt(self) -> str:
        """The text CLIP score compares with: the prompt without an embedding's trigger token."""
        return strip_token(self.prompt, self.embedding_token) if self.embedding_token else self.prompt


OPTIONAL_FIELDS = ("lora", "lora_weight", "embedding", "embedding_token", "init_image", "strength", "prompt_sr",
                   "prompt_template", "lcm_lora", "extra_loras")
