"""The dry run: what a sweep would do (cells, work units, UNet evaluations, decodes, time), rendering nothing."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .img2img import steps_run
from .plan import Cell, Plan
from .render import plan_batches
from .axes import FIELDS
from .models import guidance_embedded, runs_guidance
from .samplers import build_scheduler, get_sampler, get_schedule
from .stages import format_duration

SD15_SCHEDULER = Path(__file__).parent / "skeletons" / "sd15" / "scheduler" / "scheduler_config.json"
SDXL_SCHEDULER = Path(__file__).parent / "skeletons" / "sdxl" / "scheduler" / "scheduler_config.json"


def _scheduler(config: Path, sampler: str, steps: int, schedule: str):
    """A sampler's scheduler on a shipped skeleton's schedule, its timesteps set for `steps`."""
    scheduler = build_scheduler(get_sampler(sampler), json.loads(config.read_text()), [0], get_schedule(schedule))
    scheduler.set_timesteps(steps)
    return scheduler


@lru_cache(maxsize=None)
def unet_calls(sampler: str, steps: int, schedule: str = "Automatic") -> int:
    """UNet calls of one denoise (Heun and DPM2 call it about twice a step), from the SD1 schedule."""
    return len(_scheduler(SD15_SCHEDULER, sampler, steps, schedule).timesteps)


def unet_evaluations(cell: Cell) -> int:
    """UNet sample-evaluations of one trajectory: calls x 2 with classifier-free guidance; img2img runs
    the last int(steps * strength) of the steps."""
    calls = unet_calls(cell.sampler, cell.steps, cell.schedule)
    if cell.strength is not None:
        calls = calls * steps_run(cell.steps, cell.strength) // cell.steps
    return calls * (2 if runs_guidance(cell.cfg, guidance_embedded(cell.model)) else 1)


@lru_cache(maxsize=None)
def refiner_split(sampler: str, steps: int, schedule: str, switch: float) -> tuple[int, int]:
    """(UNet calls of the base part, of the refiner part) of a refiner cell, as sdexp.denoise splits them
    on SDXL base's schedule (the timesteps where a switch falls depend on its spacing)."""
    from .denoise import start_after, steps_before

    scheduler = _scheduler(SDXL_SCHEDULER, sampler, steps, schedule)
    return steps_before(scheduler, switch), len(scheduler.timesteps) - start_after(scheduler, switch)


def second_pass_evaluations(cell: Cell) -> int:
    """UNet sample-evaluations of a hires cell's second pass or a refiner cell's refiner part (0 for a
    one-pass cell)."""
    if cell.refined:
        calls = refiner_split(cell.sampler, cell.steps, cell.schedule, cell.refiner_switch)[1]
        return calls * (2 if runs_guidance(cell.cfg, guidance_embedded(cell.refiner)) else 1)
    if not cell.two_pass:
        return 0
    steps = cell.hires_steps or cell.steps
    calls = unet_calls(cell.sampler, steps, cell.schedule) * steps_run(steps, cell.hires_strength) // steps
    return calls * (2 if runs_guidance(cell.cfg, guidance_embedded(cell.model)) else 1)


def first_pass_evaluations(first: Cell, users: list[Cell]) -> int:
    """UNet sample-evaluations of a first pass: a whole trajectory, or for refiner cells their base's
    denoise as far as the latest switch they need (to the end when a refiner=none cell shares it)."""
    if not any(c.refined for c in users):
        return unet_evaluations(first)
    calls = max(refiner_split(c.sampler, c.steps, c.schedule, c.refiner_switch)[0] if c.refined
                else unet_calls(c.sampler, c.steps, c.schedule) for c in users)
    return calls * (2 if runs_guidance(first.cfg, guidance_embedded(first.model)) else 1)


def summary(plan: Plan, stored: set[str], history: pd.DataFrame, batch_size: int) -> dict:
    todo = [c for c in plan.cells if c.image_id not in stored]
    firsts = {c.first_pass.trajectory: c.first_pass for c in todo}        # one-pass cells are their own
    users: dict[tuple, list[Cell]] = {}
    for c in todo:
        users.setdefault(c.first_pass.trajectory, []).append(c)
    seconds = {c.trajectory: c for c in todo if c.two_pass or c.refined}
    evaluations = sum(first_pass_evaluations(f, users[k]) for k, f in firsts.items()) + \
        sum(map(second_pass_evaluations, seconds.values()))
    pixel_decodes = {(c.first_pass.trajectory, c.vae, c.hires_scale, c.hires_upscaler) for c in todo
                     if c.two_pass and c.vae_encodes}
    encodings = {(model, c.embedding if model == c.model else None, text, c.clip_skip) for c in todo
                 for model in ((c.model, c.refiner) if c.refined else (c.model,))     # a refiner encodes again
                 for text in ([c.prompt, c.negative_prompt] if runs_guidance(c.cfg, guidance_embedded(model))
                              else [c.prompt])}
    return {
        "cells": len(plan.cells), "stored": len(plan.cells) - len(todo), "to_render": len(todo),
        "models": len({c.model for c in todo} | {c.refiner for c in todo if c.refined}), "prompt_encodings": len(encodings),
        "trajectories": len(firsts), "second_passes": len(seconds),
        "batches": len(plan_batches([c for c in todo if not (c.two_pass or c.refined)]
                                    + [c.first_pass for c in seconds.values()],
                                    batch_size)) + len(plan_batches(list(seconds.values()), batch_size)),
        "unet_evaluations": evaluations,
        "unet_evaluations_per_cell_loop": sum(first_pass_evaluations(c.first_pass, [c]) + second_pass_evaluations(c)
                                              for c in todo),
        "vae_decodes": len(todo) + len(pixel_decodes), "estimate_seconds": estimate(todo, history),
    }


# the row columns of what a denoise depends on, from the registry (as Cell.trajectory)
TRAJECTORY_COLUMNS = [a.name for a in FIELDS if a.level not in ("decode", "label")]
TIMING_KEY = ("model", "width", "height", "sampler", "steps")     # timings that predict one another


def timing_history(results_root: Path) -> pd.DataFrame:
    """The timed rows of every sweep under results_root: the columns of a trajectory, `seconds`, and
    `warmup` (True where only warmup_seconds was kept: the first batch of a model and size)."""
    from .store import Store, StoreError

    columns = list(dict.fromkeys(["sweep", *TRAJECTORY_COLUMNS, "seconds", "warmup_seconds"]))
    frames = []
    for folder in sorted(Path(results_root).glob("*/rows")) if Path(results_root).is_dir() else []:
        try:
            frames.append(Store(folder.parent).load_rows(columns))
        except (StoreError, OSError, ValueError):
            continue          # a damaged store times nothing; `sdexp verify` reports it
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[*columns, "warmup"])
    rows = pd.concat(frames, ignore_index=True)
    rows["warmup"] = rows.seconds.isna()
    rows["seconds"] = rows.seconds.fillna(rows.warmup_seconds)
    return rows[rows.seconds.notna()]


def _evaluations(runs: pd.DataFrame) -> int:
    return sum(unet_calls(r.sampler, int(r.steps), getattr(r, "schedule", None) or "Automatic")
               * (2 if r.cfg > 1 else 1) for r in runs.itertuples())


def estimate(todo: list[Cell], history: pd.DataFrame) -> float | None:
    """Seconds to render, at the rate (seconds per UNet evaluation) of stored rows of the same model,
    size, sampler and steps (from any sweep), else of the same model and size; None where a
    trajectory has neither."""
    if not todo:
        return 0.0
    if history.empty or "seconds" not in history.columns:
        return None
    history = history[history.seconds.notna()]
    if "warmup" not in history.columns:
        history = history.assign(warmup=False)
    rates: dict[tuple, float | None] = {}

    def rate(key: tuple) -> float | None:
        """Seconds per UNet evaluation of the rows matching key: past warm-up, else warm-up batches."""
        if key not in rates:
            same = history[[k == key for k in zip(*(history[c] for c in TIMING_KEY[:len(key)]))]]
            if (~same.warmup).any():
                same = same[~same.warmup]
            runs = same.drop_duplicates([c for c in ["sweep", *TRAJECTORY_COLUMNS] if c in same.columns])
            evaluations = _evaluations(runs) if not same.empty else 0
            rates[key] = float(same.seconds.sum()) / evaluations if evaluations else None
        return rates[key]

    total = 0.0
    for c in {c.trajectory: c for c in todo}.values():
        key = tuple(c.axis(k) for k in TIMING_KEY)
        exact = rate(key)
        r = exact if exact is not None else rate(key[:3])
        if r is None:
            return None
        total += r * unet_evaluations(c)
    return total


def format_summary(plan: Plan, s: dict) -> str:
    eta = ("unknown (no stored timings of this model and size under results_root)" if s["estimate_seconds"] is None
           else f"{format_duration(s['estimate_seconds'])} (from stored timings of the same model, size, "
                f"sampler and steps)")
    saved = s["unet_evaluations_per_cell_loop"] / max(1, s["unet_evaluations"])
    lines = [
        f"sdexp plan: {plan.name} -> {plan.folder}",
        f"  images (cells x prompts x seeds)  {s['cells']}",
        f"  already stored                    {s['stored']}",
        f"  to render                         {s['to_render']}",
        f"  models to load                    {s['models']}",
        f"  prompt encodings                  {s['prompt_encodings']}",
        f"  denoise trajectories              {s['trajectories']}" + (" (first passes shared by the second)"
                                                                   if s["second_passes"] else ""),
        f"  second passes (hires, refiner)    {s['second_passes']}",
        f"  batches                           {s['batches']}",
        f"  UNet evaluations                  {s['unet_evaluations']} "
        f"({saved:.1f}x fewer than one render per image)",
        f"  VAE decodes                       {s['vae_decodes']}" + (" (with first passes decoded for a pixel "
                                                                  "upscaler)" if s["vae_decodes"] > s["to_render"]
                                                                  else ""),
        f"  grid                              x={plan.grid['x']} y={plan.grid['y']} z={plan.grid['z']}",
        f"  estimate                          {eta}",
    ]
    return "\n".join(lines)
