"""The row of each rendered image: identity, every registry column, where each file came from, and
the facts of the render. Built where the image is rendered (this process, or a Ray worker); the
store's writer adds the facts of the image file."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from functools import lru_cache

import torch

from .stages import timed


@lru_cache(maxsize=1)
def versions() -> dict:
    import diffusers
    import transformers

    from . import __version__

    return {"sdexp_version": __version__, "torch_version": torch.__version__,
            "diffusers_version": diffusers.__version__, "transformers_version": transformers.__version__,
            "python_version": platform.python_version()}


def image_row(sweep: str, item: dict, clip_score: float, facts: dict) -> dict:
    """One row per image (cell.row_values gives the registry's columns); `facts`: the renderer's
    device, dtype and scorer_source. The writer fills in image_path."""
    cell, hashes = item["cell"], item["lora_hashes"]
    return {
        "sweep": sweep, "cell_id": cell.cell_id, "image_id": cell.image_id, **cell.row_values(),
        "model_source": item["model_source"], "model_hash": item["model_hash"],
        "vae_source": item["vae_source"], "vae_hash": item["vae_hash"], "scheduler": item["scheduler"],
        "lora_source": cell.lora.source if cell.lora else None, "lora_hash": hashes.get(cell.lora),
        "lcm_lora_source": cell.lcm_lora.source if cell.lcm_lora else None,
        "lcm_lora_hash": hashes.get(cell.lcm_lora),
        "extra_lora_hashes": ", ".join(f"{s.name}:{hashes[s]}" for s, _ in cell.extra_loras or ()) or None,
        "embedding_source": cell.embedding.source if cell.embedding else None,
        "embedding_hash": item["embedding_hash"],
        "init_image_source": cell.init_image.source if cell.init_image else None,
        "init_image_hash": cell.init_image.sha256 if cell.init_image else None,
        "refiner_source": item.get("refiner_source"), "refiner_hash": item.get("refiner_hash"),
        "final_width": cell.final_size[0], "final_height": cell.final_size[1],
        "image_path": None, "clip_score": clip_score, "clip_model": facts["scorer_source"],
        "seconds": item["seconds"], "batch_size": item["batch_size"], "batch_index": item["batch_index"],
        "batch_id": item["batch_id"],
        "device": str(facts["device"]), "dtype": str(facts["dtype"]).replace("torch.", ""), **versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def batch_rows(sweep: str, items: list[dict], scorer, warmup: bool, facts: dict) -> list[dict]:
    """The rows of one rendered batch, CLIP-scored on the render device (`scorer` None: NaN), but
    the facts of their files (the writer adds them). A warm-up batch's images keep their time in
    warmup_seconds and have no per-image seconds. Takes each item's `pixels` (the scorer's input)."""
    pixels = [i.pop("pixels") for i in items]
    with timed("score"):
        scores = (scorer.score_pixels(pixels, [i["cell"].scoring_prompt for i in items]) if scorer
                  else [float("nan")] * len(items))
    rows = []
    for item, score in zip(items, scores):
        row = {**image_row(sweep, item, score, facts), "image_flags": item.get("image_flags")}
        if warmup:
            row["warmup_seconds"], row["seconds"] = row["seconds"], None
        rows.append(row)
    return rows
