"""The swept axes and how a grid picks its X, Y and Z among them. Light to import (no torch), so
the report can use it without loading the render stack."""
from __future__ import annotations

AXES = ("model", "vae", "lora", "lora_weight", "embedding", "sampler", "steps", "cfg", "clip_skip", "init_image",
        "strength", "prompt_sr", "seed", "prompt", "negative_prompt", "width", "height", "size")


class ConfigError(ValueError):
    """Bad input, found before any model loads. The message names key, value and valid choices."""


def grid_axes(grid, swept: list[str]) -> dict:
    """x, y, z of the grid: given ones must be swept axes; missing ones default to swept axes."""
    chosen = {k: grid[k] for k in ("x", "y", "z")}
    for k, v in chosen.items():
        if v is not None and v not in swept:
            valid = ", ".join(swept) if swept else "none (nothing is swept)"
            raise ConfigError(f"grid.{k}={v!r} is not a swept axis; valid: {valid}")
    given = [v for v in chosen.values() if v is not None]
    if len(given) != len(set(given)):
        raise ConfigError(f"grid axes must differ; got x={chosen['x']!r}, y={chosen['y']!r}, z={chosen['z']!r}")
    # seed is shown per cell and prompts give one grid each, unless nothing else is swept
    free = [a for a in swept if a not in given and a not in ("seed", "prompt")]
    free += [a for a in swept if a == "prompt" and a not in given and len(free) < 2]
    for k in ("x", "y", "z"):
        if chosen[k] is None and free:
            chosen[k] = free.pop(0)
    return {**chosen, "seed": grid["seed"]}
