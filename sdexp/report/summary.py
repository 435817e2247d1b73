"""The sweep at a glance: what was swept, how many images, how long it took, on what hardware and
with which versions, from the rows and the stored run configs alone."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..axes import AXES, swept_columns, unused
from ..grid import AXIS_LABELS, format_value
from ..grid_rows import ordered_values
from ..image_health import FLAG_MEANING, flagged
from ..stages import format_duration

VERSION_COLUMNS = ["sdexp_version", "torch_version", "diffusers_version", "transformers_version",
                   "python_version"]


def duration(seconds: float) -> str:
    """83.2 -> '1 min 23 s'; 4000 -> '1 h 6 min'."""
    return format_duration(seconds, about=False, minute="min")


def _distinct(rows: pd.DataFrame, column: str) -> list[str]:
    if column not in rows.columns:
        return []
    return [format_value(v) if v != "" else "(empty)" for v in ordered_values(rows[column])]


def summarize(rows: pd.DataFrame, folder: Path, grid: dict | None) -> dict:
    """Plain data for the report's summary section (the template escapes all of it)."""
    swept, fixed = [], []
    swept_set = set(swept_columns(rows))
    for axis in AXES:
        if axis not in rows.columns or axis == "prompt" or unused(rows, axis):
            continue
        values = _distinct(rows, axis)
        (swept if axis in swept_set else fixed).append((AXIS_LABELS[axis], values))
    facts = [("Images", str(len(rows)))]
    if flagged(rows).any():
        facts.append((f"Flagged images ({FLAG_MEANING}; left out of metrics and the best cell)",
                      str(int(flagged(rows).sum()))))
    if "cell_id" in rows.columns:
        facts.append(("Cells (settings but seed and prompt)", str(rows["cell_id"].nunique())))
    if "prompt" in rows.columns:
        facts.append(("Prompts", str(rows["prompt"].nunique())))
    if "seed" in rows.columns:      # per cell and prompt: runs of other settings may add other seeds
        keys = [c for c in ("cell_id", "prompt") if c in rows.columns]
        counts = rows.groupby(keys)["seed"].nunique() if keys else pd.Series([rows["seed"].nunique()])
        lo, hi = int(counts.min()), int(counts.max())
        facts.append(("Seeds per cell and prompt", str(lo) if lo == hi else f"{lo} to {hi}"))
    steady, warm = (rows[c] if c in rows.columns else pd.Series(dtype=float) for c in ("seconds", "warmup_seconds"))
    if steady.notna().any() or warm.notna().any():
        total = float(steady.sum()) + float(warm.sum())
        parts = [f"{float(steady.sum()) / int(steady.notna().sum()):.2f} s per image"] if steady.notna().any() else []
        if warm.notna().any():       # the first batch of each model and size, kept out of the rate
            parts.append(f"{duration(float(warm.sum()))} of it warm-up")
        facts.append(("Render time", f"{duration(total)} ({'; '.join(parts)})"))
    if "created_at" in rows.columns and rows["created_at"].notna().any():
        times = pd.to_datetime(rows["created_at"], utc=True, errors="coerce").dropna()
        if len(times):
            first, last = times.min(), times.max()
            end = last.strftime("%H:%M:%S" if first.date() == last.date() else "%Y-%m-%d %H:%M:%S")
            facts.append(("Rendered", f"{first:%Y-%m-%d %H:%M:%S} to {end} UTC"))
    runs = sorted((Path(folder) / "config").glob("run-*.yaml"))
    if runs:
        facts.append(("Runs", str(len(runs))))
    hardware = []
    for column, label in (("device", "Device"), ("dtype", "Precision"), ("batch_size", "Batch sizes")):
        values = _distinct(rows, column)
        if values:
            hardware.append((label, ", ".join(values)))
    versions = []
    for column in VERSION_COLUMNS:
        values = _distinct(rows, column)
        if values:
            versions.append((column.removesuffix("_version"), ", ".join(values)))
    sources = []
    for name, source, digest in (("model", "model_source", "model_hash"), ("vae", "vae_source", "vae_hash")):
        if name in rows.columns:
            cols = [c for c in (name, source, digest) if c in rows.columns]
            for rec in rows[cols].drop_duplicates().to_dict("records"):
                sources.append((AXIS_LABELS[name], format_value(rec[name]),
                                format_value(rec.get(source)) if source in rec else "",
                                (format_value(rec.get(digest)) or "")[:10] if digest in rec else ""))
    scorers = _distinct(rows, "clip_model")
    prompts = [format_value(p) for p in ordered_values(rows["prompt"])] if "prompt" in rows.columns else []
    negative = _distinct(rows, "negative_prompt")
    return {
        "name": format_value(rows["sweep"].iloc[0]) if "sweep" in rows.columns and len(rows) else Path(folder).name,
        "facts": facts, "swept": swept, "fixed": fixed, "hardware": hardware, "versions": versions,
        "sources": sources, "scorers": [s for s in scorers if s != "None"], "prompts": prompts,
        "negative_prompts": [n for n in negative if n not in ("(empty)", "None")],
        "grid": {k: (AXIS_LABELS.get(grid.get(k), grid.get(k)) if grid and grid.get(k) else None)
                 for k in ("x", "y", "z")} if grid else None,
    }
