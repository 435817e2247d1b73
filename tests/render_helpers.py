"""Render cells with the real engine and build a plain diffusers pipeline of the tiny model."""
from __future__ import annotations

import numpy as np
import torch

from sdexp import tiny
from sdexp.models import ModelCache, ModelSpec, VaeSpec
from sdexp.plan import Cell
from sdexp.render import render

CPU, F32 = torch.device("cpu"), torch.float32
TINY = ModelSpec("tiny", "tiny")
AUTO = VaeSpec("Automatic", None)


def cell(prompt="a cat", seed=0, cfg=7.0, steps=4, sampler="Euler a", vae=AUTO, negative="", **axes) -> Cell:
    width, height = axes.pop("size", (64, 64))
    return Cell(TINY, vae, sampler, steps, cfg, 1, seed, prompt, negative, width, height, **axes)


def render_cells(cells, cache: ModelCache | None = None, batch_size: int = 8, device=CPU) -> dict:
    """{cell: uint8 array} for every cell, rendered by sdexp's engine."""
    cache = cache if cache is not None else ModelCache(1)
    out = {}
    for items in render(cells, cache, batch_size=batch_size, device=torch.device(device), dtype=F32):
        for item in items:
            out[item["cell"]] = item["array"]
    return out


def tiny_pipeline(cls=None):
    from diffusers import StableDiffusionPipeline

    cls = cls or StableDiffusionPipeline
    pipe = cls.from_pretrained(tiny.tiny_model_folder(), safety_checker=None, feature_extractor=None,
                               requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def as_uint8(image) -> np.ndarray:
    """diffusers' output_type="np" image -> uint8, rounded as sdexp's decode rounds."""
    return (np.asarray(image) * 255).round().astype("uint8")


def max_diff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def mean_diff(a, b) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def sweep_recording(module, name: str, cfgs, keys) -> tuple[dict, list[tuple]]:
    """run_sweep(cfgs, keys) with `module.name` wrapped to record the arguments of each call: (its
    output, [arguments of each call]), to count work the engine does."""
    import pytest

    from sdexp.sweep import run_sweep

    calls: list[tuple] = []
    real = getattr(module, name)
    patch = pytest.MonkeyPatch()
    patch.setattr(module, name, lambda *args: calls.append(args) or real(*args))
    try:
        out = run_sweep(cfgs, keys, log=lambda *a: None)
    finally:
        patch.undo()
    return out, calls
