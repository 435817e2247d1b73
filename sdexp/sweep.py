"""Run a sweep: plan -> render -> store -> score -> grids and report, resuming what is already stored."""
from __future__ import annotations

import sys
import time

import pandas as pd
from omegaconf import DictConfig
from tqdm import tqdm

from .clipscore import ClipScorer
from .dryrun import format_summary, summary, timing_history
from .estimates import read_groups
from .grid import DEFAULT_MAX_PIXELS
from .grid_rows import GridPage, drop_stale_grids, render_grids
from .models import ModelCache
from .axes import swept_columns
from .plan import Plan, grid_axes
from .devices import resolve_device
from .renderer import Renderer, resolve_batch_size
from .report import build_report
from .stages import StageLog
from .store import Store
from .writer import Writer
from .compact import compact_if_needed
from .verify import quick_repair
from .preflight import checked_plan


WRITER_THREADS = 2     # PNG encoding and writes beside the render thread


def render_plan(plan: Plan, store: Store, log=print, cache: ModelCache | None = None,
                scorer: ClipScorer | None = None) -> int:
    """Render every cell of the plan not yet in the store; returns the number rendered.
    run.backend=ray sends the work to Ray actors (sdexp.ray_backend); locally a caller may pass its
    own model cache and CLIP scorer (of the plan's scorer source, on the render device), to keep
    them loaded across sweeps. Each batch is CLIP-scored on the render device, then handed to the
    writer pool (sdexp.writer), which writes its PNGs and then its rows while the next batch
    renders. The stage timings of each batch go to timings/run-*.parquet, and their line ends the
    render."""
    quick_repair(store, log)          # the cheap store check: damaged rows and images are rendered again
    done = store.image_ids()
    todo = [c for c in plan.cells if c.image_id not in done]
    log(f"sdexp: {len(plan.cells)} images planned, {len(plan.cells) - len(todo)} already stored, "
        f"{len(todo)} to render")
    if not todo:
        return 0
    if plan.run["backend"] == "ray":
        from .ray_backend import render_on_ray

        render_on_ray(plan, store, todo, log)
        return len(todo)
    renderer = Renderer.for_run(plan.run, plan.scorer, cache, scorer)
    batch_size = resolve_batch_size(plan.run, plan.cells, renderer.device)
    bar = progress_bar(plan, len(todo))
    clock = renderer.clock()
    stages = StageLog()
    try:            # a fault ends the bar's line first, so its one-line message starts a line
        with clock.active(), Writer(store, threads=WRITER_THREADS) as writer:
            start = time.perf_counter()
            for items, rows, warmup in renderer.batches(plan.name, todo, batch_size, stages):
                with clock.timed("wait"):           # blocks only while the writer's queue is full
                    writer.submit(len(stages.batches), [(i["cell"].image_id, i["image"]) for i in items], rows)
                now = time.perf_counter()
                stages.add(items[0]["batch_id"], len(items), warmup, now - start, clock.take())
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


def progress_bar(plan: Plan, total: int) -> tqdm:
    return tqdm(total=total, unit="img", desc=plan.name, disable=not plan.run["progress"], file=sys.stderr)


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
                    resolve_batch_size(plan.run, plan.cells, resolve_device(plan.run["device"])))
        log(format_summary(plan, s))
        return {"folder": store.folder, "rendered": 0, "grids": [], "cells": len(plan.cells), "summary": s}
    if plan.run["backend"] == "ray":
        from .ray_backend import check_cluster

        check_cluster(plan)             # connects; workers that cannot fit fail here, before any file changes
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
