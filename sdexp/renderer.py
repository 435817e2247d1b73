"""What renders a sweep's cells in one process (this one, or a Ray worker): its device and dtype,
its bounded model cache, its CLIP scorer on the render device, and the loop from cells to
batches of scored rows. The local backend (sdexp.sweep) and the Ray workers (sdexp.ray_worker)
both render through `Renderer.batches`, so their images and rows are the same."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .batching import auto_batch_size
from .cell import Cell
from .clipscore import ClipScorer
from .devices import resolve_device, resolve_dtype
from .image_rows import batch_rows
from .models import ModelCache
from .render import render
from .stages import StageClock, StageLog


def quiet_libraries() -> None:
    """Keep the sweep's own progress bar the only one: library bars and notices off."""
    import diffusers
    import transformers

    for lib in (diffusers, transformers):
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()


def resolve_batch_size(run: dict, cells: list[Cell], device: torch.device) -> int:
    if run["batch_size"] != "auto":
        return int(run["batch_size"])
    largest = max(cells, key=lambda c: c.width * c.height)
    return auto_batch_size(device, largest.width, largest.height)


@dataclass
class Renderer:
    device: torch.device
    dtype: torch.dtype
    options: dict
    cache: ModelCache
    scorer: ClipScorer | None

    @classmethod
    def for_run(cls, run: dict, scorer: dict, cache: ModelCache | None = None,
                clip: ClipScorer | None = None) -> "Renderer":
        """From a plan's run and scorer settings; a caller may pass its own cache and CLIP scorer (of
        the scorer source, on the render device) to keep them loaded across sweeps."""
        quiet_libraries()
        device = resolve_device(run["device"])
        options = {"channels_last": device.type == "cuda" and run["channels_last"],
                   "compile": device.type == "cuda" and run["compile"]}
        if not scorer["enabled"]:
            clip = None
        elif clip is None:
            clip = ClipScorer(scorer["source"], device)
        return cls(device, resolve_dtype(run["dtype"], device), options,
                   cache or ModelCache(run["max_resident_models"]), clip)

    def clock(self) -> StageClock:
        return StageClock(torch.cuda.synchronize if self.device.type == "cuda" else None)

    @property
    def facts(self) -> dict:
        return {"device": self.device, "dtype": self.dtype,
                "scorer_source": self.scorer.source if self.scorer else None}

    def batches(self, sweep: str, cells: list[Cell], batch_size: int,
                stages: StageLog) -> Iterator[tuple[list[dict], list[dict], bool]]:
        """Render `cells`: per batch and VAE, its items (cell, PIL image, facts), their rows (CLIP
        scored) and whether it is a warm-up batch (the first of its model and size in `stages`)."""
        for items in render(cells, self.cache, batch_size=batch_size, device=self.device, dtype=self.dtype,
                            options=self.options):
            warmup = stages.is_warmup(items[0]["cell"], items[0]["batch_id"])
            yield items, batch_rows(sweep, items, self.scorer, warmup, self.facts), warmup
