"""Run a sweep: plan -> render -> store -> score -> grids and report, resuming what is already stored."""
from __future__ import annotations

import platform
import sys
import time
from functools import lru_cache
from datetime import datetime, timezone

import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from .batching import auto_batch_size
from .clipscore import ClipScorer
from .dryrun import format_summary, summary, timing_history
from .estimates import read_groups
from .grid import DEFAULT_MAX_PIXELS
from .grid_rows import GridPage, drop_stale_grids, render_grids
from .models import ModelCache
from .axes import swept_columns
from .plan import Plan, grid_axes
from .render import render
from .report import build_report
from .stages import StageClock, StageLog
from .store import Store
from .writer import Writer
from .compact import compact_if_needed
from .verify import quick_repair
from .preflight import checked_plan


WRITER_THREADS = 2     # PNG encoding and writes beside the render thread


def quiet_libraries() -> None:
    """Keep the sweep's own progress bar the only one: library bars and notices off."""
    import diffusers
    import transformers

    for lib in (diffusers, transformers):
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def resolve_batch_size(plan: Plan, device: torch.device) -> int:
    if plan.run["batch_size"] != "auto":
        return int(plan.run["batch_size"])
    largest = max(plan.cells, key=lambda c: c.width * c.height)
    return auto_batch_size(device, largest.width, largest.height)


@lru_cache(maxsize=1)
def versions() -> dict:
    import diffusers
    import transformers

    from . import __version__

    return {"sdexp_version": __version__, "torch_version": torch.__version__,
            "diffusers_version": diffusers.__version__, "transformers_version": transformers.__version__,
            "python_version": platform.python_version()}


def _row(plan: Plan, item: dict, image_path: str, clip_score: float, device, dtype, scorer_source) -> dict:
    """One row per image: identity, every registry column (cell.row_values), where each file came from,
    and the facts of the render."""
    cell, hashes = item["cell"], item["lora_hashes"]
    return {
        "sweep": plan.name, "cell_id": cell.cell_id, "image_id": cell.image_id, **cell.row_values(),
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
        "image_path": image_path, "clip_score": clip_score, "clip_model": scorer_source,
        "seconds": item["seconds"], "batch_size": item["batch_size"], "batch_index": item["batch_index"],
        "batch_id": item["batch_id"],
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), **versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def render_plan(plan: Plan, store: Store, log=print, cache: ModelCache | None = None,
                scorer: ClipScorer | None = None) -> int:
    """Render every cell of the plan not yet in the store; returns the number rendered.
    A caller may pass its own model cache and CLIP scorer (of the plan's scorer source, on the
    render device), to keep them loaded across sweeps. Each batch is CLIP-scored on the render
    device, then handed to the writer pool (sdexp.writer), which writes its PNGs and then its rows
    while the next batch renders. The stage timings of each batch go to timings/run-*.parquet, and
    their line ends the render."""
    quick_repair(store, log)          # the cheap store check: damaged rows and images are rendered again
    done = store.image_ids()
    todo = [c for c in plan.cells if c.image_id not in done]
    log(f"sdexp: {len(plan.cells)} images planned, {len(plan.cells) - len(todo)} already stored, "
        f"{len(todo)} to render")
    if not todo:
        return 0
    quiet_libraries()
    device = resolve_device(plan.run["device"])
    dtype = resolve_dtype(plan.run["dtype"], device)
    batch_size = resolve_batch_size(plan, device)
    options = {"channels_last": device.type == "cuda" and plan.run["channels_last"],
               "compile": device.type == "cuda" and plan.run["compile"]}
    if not plan.scorer["enabled"]:
        scorer = None
    elif scorer is None:
        scorer = ClipScorer(plan.scorer["source"], device)
    cache = cache or ModelCache(plan.run["max_resident_models"])
    bar = tqdm(total=len(todo), unit="img", desc=plan.name, disable=not plan.run["progress"], file=sys.stderr)
    clock = StageClock(torch.cuda.synchronize if device.type == "cuda" else None)
    stages = StageLog()
    facts = {"device": device, "dtype": dtype, "scorer_source": scorer.source if scorer else None}
    try:            # a fault ends the bar's line first, so its one-line message starts a line
        with clock.active(), Writer(store, threads=WRITER_THREADS) as writer:
            start = time.perf_counter()
            for items in render(todo, cache, batch_size=batch_size, device=device, dtype=dtype, options=options):
                with clock.timed("score"):
                    scores = (scorer.score_pixels([i.pop("pixels") for i in items],
                                                  [i["cell"].scoring_prompt for i in items])
                              if scorer else [float("nan")] * len(items))
                batch_id = items[0]["batch_id"]
                warmup = stages.is_warmup(items[0]["cell"], batch_id)
                rows = [_batch_row(plan, item, score, warmup, facts) for item, score in zip(items, scores)]
                with clock.timed("wait"):           # blocks only while the writer's queue is full
                    writer.submit(len(stages.batches), [(i["cell"].image_id, i["image"]) for i in items], rows)
                now = time.perf_counter()
                stages.add(batch_id, len(items), warmup, now - start, clock.take())
                start = now
                bar.update(len(items))
            with clock.timed("wait"):
                writer.close()
        if stages.batches:                              # the last wait for the writer counts to the last batch
            stages.batches[-1]["wait"] += clock.take()["wait"]
            stages.batches[-1]["wall"] += time.perf_counter() - start
        for k, b in enumerate(stages.batches):
            b["write"] = writer.seconds.get(k, 0.0)     # the writer's time on it, in the background
    finally:
        bar.close()
    store.save_timings(stages.batches)
    log(f"sdexp: {stages.line()}")
    return len(todo)


def _batch_row(plan: Plan, item: dict, score: float, warmup: bool, facts: dict) -> dict:
    """The row of one rendered image, but the facts of its file (the writer adds them). A warm-up
    batch's images keep their time in warmup_seconds and have no per-image seconds."""
    row = {**_row(plan, item, None, score, facts["device"], facts["dtype"], facts["scorer_source"]),
           "image_flags": item.get("image_flags")}
    if warmup:
        row["warmup_seconds"], row["seconds"] = row["seconds"], None
    return row


def plan_grid_options(plan: Plan) -> dict:
    """The plan's grid axes and seed, with the drawing options of its config (metric, max_pixels)."""
    stored = (plan.configs[0].get("grid") or {}) if plan.configs else {}
    return {"metric": stored.get("metric"), "max_pixels": stored.get("max_pixels", DEFAULT_MAX_PIXELS),
            **plan.grid}


def make_grids(plan: Plan, store: Store, rows: pd.DataFrame, groups: pd.DataFrame | None,
               lenient: bool = False) -> tuple[dict, list[GridPage]]:
    """Grids of this plan's images from the stored rows; `lenient` takes the axes from the rows
    instead of the plan. Returns the options used and the grid files written."""
    opts = plan_grid_options(plan)
    if rows.empty:
        return opts, []
    if lenient:
        swept = swept_columns(rows)
        grid = {k: (v if v in swept else None) for k, v in plan.grid.items() if k != "seed"}
        opts.update(grid_axes({**grid, "seed": plan.grid["seed"]}, swept))
    else:
        rows = rows[rows.image_id.isin({c.image_id for c in plan.cells})]
    if opts["x"] is None:
        return opts, []
    return opts, render_grids(rows, store.folder, store.grids, opts["x"], opts["y"], opts["z"],
                              seed=opts["seed"], metric=opts["metric"], groups=groups,
                              max_pixels=opts["max_pixels"])


def run_sweep(cfgs: list[DictConfig], override_keys: list[str] = (), single_job_of_multirun: bool = False,
              log=print, plan: Plan | None = None) -> dict:
    """Plan (failing before anything loads or any file changes), render, store, and grid. A caller that
    has already made `checked_plan(cfgs, ...)` passes it as `plan`."""
    if plan is None:
        plan = checked_plan(cfgs, override_keys, single_job_of_multirun)
    store = Store(plan.folder)
    for warning in plan.warnings:
        log(f"sdexp: warning: {warning}")
    if plan.dry_run:
        s = summary(plan, store.image_ids(), timing_history(plan.folder.parent),
                    resolve_batch_size(plan, resolve_device(plan.run["device"])))
        log(format_summary(plan, s))
        return {"folder": store.folder, "rendered": 0, "grids": [], "cells": len(plan.cells), "summary": s}
    with store.lock():
        store.save_config(plan.configs)
        rendered = render_plan(plan, store, log)
        compact_if_needed(store, log)
        rows, groups = store.load_rows(), read_groups(store.folder)   # read once for grids and report
        others = len(set(rows.image_id) - {c.image_id for c in plan.cells}) if not rows.empty else 0
        if others:      # earlier runs into this name with other settings: grids cover every stored image
            log(f"sdexp: {others} stored images come from earlier runs of {plan.name!r} with other settings; "
                f"grids and report cover all {len(rows)}")
        opts, pages = make_grids(plan, store, rows, groups, lenient=single_job_of_multirun or bool(others))
        if others:
            drop_stale_grids(store.grids, pages)
        report = (build_report(store.folder, grid=opts, grids=pages, rows=rows, groups=groups)
                  if not rows.empty else None)
    grids = [g.path for g in pages]
    folder = store.folder.resolve()
    log(f"sdexp: rendered {rendered} images")
    log(f"sdexp: images  {folder / 'images'}")
    log(f"sdexp: rows    {folder / 'rows'}  (sdexp.load_rows({str(folder)!r}))")
    for g in grids:
        log(f"sdexp: grid    {g.resolve()}")
    if report:
        log(f"sdexp: report  {report.resolve()}")
    return {"folder": store.folder, "rendered": rendered, "grids": grids, "report": report,
            "cells": len(plan.cells)}
