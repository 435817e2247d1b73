"""The grid options of a stored sweep: its newest run config's `grid`, command-line overrides on
top, then the axes resolved against what the rows actually sweep. Reads only results/<name>/."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..axes import BY_NAME, ConfigError, grid_axes, swept_columns
from ..config import GridConf
from ..metrics.registry import METRICS


def newest_run_config(folder: Path) -> dict:
    """The newest config/run-*.yaml of the sweep ({"jobs": [...]}), or {} without one."""
    runs = sorted((Path(folder) / "config").glob("run-*.yaml"))
    if not runs:
        return {}
    return yaml.safe_load(runs[-1].read_text()) or {}


def _job_value(job: dict, axis: str):
    """What a job set for an axis: its config key (checkpoint, vae_file, ...), for files with the group's name."""
    key = BY_NAME[axis].config_key if axis in BY_NAME else axis
    if axis in ("model", "vae"):
        return repr((job.get(key), (job.get(axis) or {}).get("name")))
    if axis == "prompt":
        return repr((job.get("prompt"), job.get("prompts")))
    return repr(job.get(key))


def swept_in_order(rows: pd.DataFrame, jobs: list[dict]) -> list[str]:
    """Axes with more than one value in the rows, in the order the user gave them.

    Hydra's sweeper runs the product of the swept values with the first one given varying
    slowest, so the fewer times an axis changes from one job to the next, the earlier it was
    given. Axes that vary inside a job (seed lists, prompt sets) come last, in AXES order."""
    swept = swept_columns(rows)
    changes = {}
    for axis in swept:
        values = [_job_value(j, axis) for j in jobs]
        n = sum(a != b for a, b in zip(values, values[1:]))
        if n:
            changes[axis] = n
    by_jobs = sorted(changes, key=lambda a: changes[a])
    return swept_columns(rows, by_jobs)


def parse_overrides(overrides: list[str]) -> dict:
    """['grid.x=cfg', 'seed=all'] -> {'x': 'cfg', 'seed': 'all'} (values parsed as YAML)."""
    valid = [f.name for f in fields(GridConf)]
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("grid.")
        if not sep or key not in valid:
            raise ConfigError(f"{item!r} is not a grid option; valid: "
                              + ", ".join(f"grid.{k}=VALUE" for k in valid))
        out[key] = yaml.safe_load(value) if value.strip() else None
    return out


def swapped(stored: dict, given: dict) -> dict:
    """The stored layout (x, y, z) with the given axes put in: a slot left as stored whose axis the
    overrides moved to another slot takes an axis they moved out (`grid.x=sampler grid.y=cfg` on
    x=cfg, y=steps, z=sampler gives z=steps), else none."""
    slots = ("x", "y", "z")
    moved = {k: given[k] for k in slots if k in given}
    out = {**{k: stored.get(k) for k in slots}, **moved}
    free = [stored.get(k) for k in moved if stored.get(k) and stored.get(k) not in out.values()]
    for k in slots:
        if k not in moved and out[k] is not None and out[k] in moved.values():
            out[k] = free.pop(0) if free else None
    return out


def grid_options(folder: Path, rows: pd.DataFrame, overrides: list[str] = ()) -> dict:
    """x, y, z, seed, metric and max_pixels for the sweep's grids; raises ConfigError naming
    the key, the value and the valid choices."""
    jobs = newest_run_config(folder).get("jobs") or []
    stored = {k: v for k, v in ((jobs[0].get("grid") or {}) if jobs else {}).items()
              if k in {f.name for f in fields(GridConf)}}
    given = parse_overrides(list(overrides))
    stored.update({k: v for k, v in swapped(stored, given).items() if k not in given})
    try:
        conf = OmegaConf.merge(OmegaConf.structured(GridConf), stored, given)
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad grid option: {e.msg if hasattr(e, 'msg') else e}") from None
    opts = OmegaConf.to_container(conf)
    seed = opts["seed"]
    if not (seed in ("first", "all") or (isinstance(seed, int) and not isinstance(seed, bool))):
        raise ConfigError(f"grid.seed={seed!r} is not valid; valid: 'first', 'all' or a seed value")
    if opts["metric"] is not None and opts["metric"] not in METRICS:
        raise ConfigError(f"grid.metric={opts['metric']!r} is not a known metric; "
                          f"valid: {', '.join(METRICS)} or null")
    if opts["max_pixels"] < 1:
        raise ConfigError(f"grid.max_pixels={opts['max_pixels']} must be >= 1")
    axes = grid_axes(opts, swept_in_order(rows, jobs))
    return {**opts, **axes}
