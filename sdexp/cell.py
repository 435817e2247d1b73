"""A cell: one image to render, frozen and hashable, holding every axis.

Its fields are the registry's (axes.py): every axis and the facts that follow them, in registry
order, axes that are off by default last. `cell_id` names a grid cell (all settings except seed and
prompt); `image_id` names one image (the grid cell plus prompt and seed). Axes that are off (no
LoRA, txt2img, the Automatic schedule, ...) stay out of `cell_id`, so cells that do not use them keep
the ids they had before those axes existed (tests/test_golden_ids.py pins them).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, field, make_dataclass, replace
from functools import cached_property
from typing import Any

from .axes import FIELDS, REGISTRY
from .hires import get_upscaler, target_size

OPTIONAL_FIELDS = tuple(a.name for a in FIELDS if a.optional)
_OFF = {a.name: a.off for a in FIELDS if a.optional}
_TRAJECTORY = tuple(a.name for a in FIELDS if a.level not in ("decode", "label"))
_BATCH = tuple(a.name for a in FIELDS if a.level in ("model", "batch"))
_COLUMNS = tuple(a.name for a in REGISTRY)
_NOT_IN_CELL_ID = ("seed", "prompt", "prompt_template")
_ID_FIELDS = tuple(a.name for a in FIELDS if a.name not in _NOT_IN_CELL_ID)
_CELL_IDS: dict[str, str] = {}     # repr of a cell's id fields -> its cell_id
# the fields of a second pass: off in the first pass it starts from (the hires fix's, the refiner's)
SECOND_PASS = tuple(a.name for a in FIELDS if a.config_key.startswith("hires."))
REFINER_PASS = ("refiner", "refiner_switch")


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shown_value(value):
    """An axis value as grids and rows show it: a file (model, VAE, LoRA, ...) by its name."""
    return value.name if hasattr(value, "name") and hasattr(value, "source") else value


class _CellMethods:
    def axis(self, name: str):
        """The value of an axis as grids and rows show it (files by name)."""
        if name == "size":
            return self.size
        return shown_value(getattr(self, name))

    def row_values(self) -> dict:
        """Every registry column of this cell's row: axes as grids show them, facts as text."""
        out = {name: self.axis(name) for name in _COLUMNS}
        out["prompt_template"] = self.prompt_template or self.prompt
        out["extra_loras"] = ", ".join(f"{spec.name}:{w:g}" for spec, w in self.extra_loras or ()) or None
        return out

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @cached_property          # a frozen dataclass has a __dict__: computed once per cell
    def cell_id(self) -> str:
        # cells of one grid cell (every seed and prompt of it) digest once: keyed by the repr of their
        # id fields, which, unlike ==, tells 3 from 3.0 and True from 1 as the digest's JSON does
        key = repr(tuple(getattr(self, k) for k in _ID_FIELDS))
        found = _CELL_IDS.get(key)
        if found is None:
            d = {k: v for k, v in asdict(self).items()
                 if k not in _NOT_IN_CELL_ID and (k not in _OFF or v != _OFF[k])}
            found = _CELL_IDS[key] = digest(d)
        return found

    @cached_property
    def image_id(self) -> str:
        return digest([self.cell_id, self.prompt, self.seed])

    @cached_property
    def trajectory(self) -> tuple:
        """Everything the denoise depends on: every field but decode-only and label ones, so txt2img
        cells differing only in VAE share one trajectory (img2img ones do not: the VAE encodes their
        init image; nor do hires passes after a pixel upscaler: the VAE decodes and encodes between passes)."""
        return tuple(getattr(self, k) for k in _TRAJECTORY) + (self.vae if self.vae_encodes else None,)

    @property
    def vae_encodes(self) -> bool:
        """True when the cell's VAE encodes an image before (or between) its denoise passes."""
        if self.init_image:
            return True
        return bool(self.hires_scale) and not get_upscaler(self.hires_upscaler).latent

    @property
    def two_pass(self) -> bool:
        """True for a hires-fix cell: a txt2img first pass, then a second pass from its result."""
        return self.hires_scale is not None

    @property
    def refined(self) -> bool:
        """True for an SDXL refiner cell: the base denoises until refiner_switch, the refiner the rest."""
        return self.refiner is not None

    @cached_property
    def first_pass(self):
        """The txt2img cell whose denoise a two-pass cell starts from (itself for a one-pass cell): every
        hires variant of it shares that trajectory; every refiner cell shares its base's full txt2img
        trajectory, whose latents at each switch point are kept (sdexp.refiner)."""
        if self.two_pass:
            return replace(self, **{k: _OFF[k] for k in SECOND_PASS})
        return replace(self, **{k: _OFF[k] for k in REFINER_PASS}) if self.refined else self

    @property
    def final_size(self) -> tuple[int, int]:
        """(width, height) of the image written: the hires target size, else the cell's size."""
        return target_size(self.width, self.height, self.hires_scale) if self.two_pass else (self.width, self.height)

    @cached_property
    def batch_key(self) -> tuple:
        """What one batch must share: every model- and batch-level field (UNet state, schedule, size,
        step arguments, noise device) and guidance on/off."""
        return tuple(getattr(self, k) for k in _BATCH) + (self.cfg > 1,)

    @property
    def lora_stack(self) -> tuple:
        """The active (LoRA, weight) pairs: extra_loras, the lora axis, then an LCM-LoRA at weight 1."""
        return tuple(self.extra_loras or ()) + tuple(
            (spec, weight) for spec, weight in ((self.lora, self.lora_weight), (self.lcm_lora, 1.0)) if spec is not None)

    @property
    def scoring_prompt(self) -> str:
        """The text CLIP score compares with: the prompt without an embedding's trigger token."""
        from .embeddings import strip_token

        return strip_token(self.prompt, self.embedding_token) if self.embedding_token else self.prompt


Cell = make_dataclass(
    "Cell",
    [(a.name, Any) for a in FIELDS if not a.optional] + [(a.name, Any, field(default=a.off)) for a in FIELDS if a.optional],
    bases=(_CellMethods,), frozen=True)
Cell.__module__ = __name__
Cell.__doc__ = "One image to render: every field of the axis registry (sdexp/axes.py)."
