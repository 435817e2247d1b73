"""Every axis of a sweep, declared once.

Each `Axis` says: the config key that sets it, its label as AUTOMATIC1111 shows it, its infotext
key, its value type and how a setting is read (lists and A1111 ranges inside one job), whether it
is off by default (then it stays out of `cell_id`, so stored sweeps keep resuming), what a change of
it invalidates, what it needs, how its values are checked, and its row column's Arrow type.

The cell's fields, its trajectory and batch keys, `cell_id`, row columns, group-table types, grid
labels, swept-axis detection, infotext and the README's axis table all read this table
(tests/test_axis_registry.py checks each axis against it). Light to import (no torch).

Adding an axis: one `Axis(...)` entry below, then the code that acts on its value (a scheduler
flag, a step argument, the initial noise). The registry's test battery covers it from then on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .axis_values import finite, map_distinct, to_float, to_int
from .hires import check_upscaler


class ConfigError(ValueError):
    """Bad input, found before any model loads. The message names key, value and valid choices."""


# What a change of an axis invalidates, from most to least work:
#   model       the checkpoint loaded
#   encoding    text encodings (and everything after them; cells still share a batch)
#   batch       a batch: cells with different values are never denoised together
#   trajectory  one denoise (cells still share a batch)
#   decode      only the VAE decode: txt2img cells differing only in it share one denoise
#   label       nothing rendered by itself (another axis carries the change)
LEVELS = ("model", "encoding", "batch", "trajectory", "decode", "label")

SEED_MAX = 2**32 - 1          # AUTOMATIC1111's seed range (it draws random seeds below 2**32)
STEPS_MAX = 1000              # SD schedulers are trained on 1000 timesteps


def _at_least(lo, what: str = ""):
    return lambda v: None if finite(v) and v >= lo else f"must be a finite number >= {lo}{what}"


@dataclass(frozen=True)
class Axis:
    name: str                       # cell field, row column and grid axis name
    label: str                      # as sdexp's grids (and A1111's X/Y/Z plot) show it
    kind: str                       # int, float, choice, text, file, size, seed, fact
    level: str                      # what a change of it invalidates (LEVELS)
    key: str | None = None          # the config key that sets it inside one job (default: name)
    infotext: str | None = None     # its key in the PNG's A1111 parameters
    arrow: str = "string"           # Arrow type of its row column: string, int64, float64
    optional: bool = False          # off by default: left out of cell_id while it has its `off` value
    off: Any = None
    needs: str | None = None        # the axis it acts with (strength acts with init_image)
    check: Callable[[Any], str | None] | None = None   # a value -> why it is invalid, or None
    grid: bool = True               # a grid axis (else a fact that follows other axes)
    field: bool = True              # a field of Cell (size is derived from width and height)
    splits: bool = True             # a string setting is a comma list (never for text and files)
    examples: tuple = ()            # two valid values that render differently (the test battery)
    bad: Any = None                 # an invalid value (the test battery)
    doc: str = ""

    @property
    def config_key(self) -> str:
        return self.key or self.name

    def convert(self, value):
        """A checked scalar value of the setting, or a ValueError naming key, value and what is valid."""
        key = self.config_key
        try:
            if self.kind in ("int", "seed"):
                value = to_int(value)
            elif self.kind == "float":
                value = to_float(value)
        except ValueError as e:
            raise ValueError(f"{key}={value!r} is {e}; valid: {self.doc or 'see README, Axes'}") from None
        reason = self.check(value) if self.check else None
        if reason:
            raise ValueError(f"{key}={value!r} {reason}")
        return value


def _known(getter: str):
    """A check that `value` names an entry of sdexp.samplers (`getter`: get_sampler, get_schedule)."""
    def check(value) -> str | None:
        from . import samplers

        try:
            getattr(samplers, getter)(value)
        except ValueError as e:
            return str(e).split(" ", 1)[1]       # the message without its leading "key=value"
        return None
    return check


def _seed(v: int) -> str | None:
    return None if v == -1 or 0 <= v <= SEED_MAX else f"is out of range; valid: 0..{SEED_MAX} (2**32 - 1), a list " \
                                                       f"of them, or -1 for random"


REGISTRY: tuple[Axis, ...] = (
    Axis("model", "Model", "file", "model", key="checkpoint", infotext="Model", splits=False,
         doc="a checkpoint: a name from `checkpoints`, a file or folder (or the model= group)"),
    Axis("vae", "VAE", "file", "decode", key="vae_file", infotext="VAE", splits=False,
         doc="a VAE: a name from `vaes`, a file or folder, or none (or the vae= group)"),
    Axis("lora", "LoRA", "file", "batch", optional=True, splits=False, doc="a name from `loras`, a file, or none"),
    Axis("lora_weight", "LoRA weight", "float", "batch", arrow="float64", optional=True, needs="lora",
         check=lambda v: None if finite(v) else "must be a finite number", examples=(0.5, 1.0), bad=float("nan")),
    Axis("embedding", "Embedding", "file", "encoding", optional=True, splits=False,
         doc="a name from `embeddings`, a file, or none"),
    Axis("sampler", "Sampler", "choice", "batch", infotext="Sampler", check=_known("get_sampler"),
         examples=("Euler", "DDIM"), bad="foo", doc="a sampler alias or A1111 name (README, Samplers)"),
    Axis("schedule", "Schedule type", "choice", "batch", infotext="Schedule type", optional=True, off="Automatic",
         check=_known("get_schedule"), examples=("Karras", "Exponential"), bad="wobbly",
         doc="a schedule type alias or A1111 name (README, Samplers and schedules)"),
    Axis("steps", "Steps", "int", "batch", infotext="Steps", arrow="int64",
         check=lambda v: None if 1 <= v <= STEPS_MAX else f"must be >= 1 and <= {STEPS_MAX}",
         examples=(2, 3), bad=0, doc=f"an integer 1..{STEPS_MAX}"),
    Axis("cfg", "CFG scale", "float", "trajectory", infotext="CFG scale", arrow="float64",
         check=_at_least(0, " (values <= 1 turn classifier-free guidance off)"), examples=(3.0, 7.0),
         bad=float("inf"), doc="a finite number >= 0"),
    Axis("eta", "Eta", "float", "batch", infotext="Eta DDIM", arrow="float64", optional=True,
         check=_at_least(0), examples=(0.5, 1.0), bad=-1.0, doc="a finite number >= 0 (DDIM's eta)"),
    Axis("s_churn", "Sigma Churn", "float", "batch", infotext="Sigma churn", arrow="float64", optional=True,
         check=_at_least(0), examples=(0.5, 1.0), bad=-1.0, doc="a finite number >= 0 (Euler's s_churn)"),
    Axis("s_tmin", "Sigma min", "float", "batch", infotext="Sigma tmin", arrow="float64", optional=True,
         check=_at_least(0), examples=(0.5, 5.0), bad=-1.0, doc="a finite number >= 0 (Euler's s_tmin)"),
    Axis("s_tmax", "Sigma max", "float", "batch", infotext="Sigma tmax", arrow="float64", optional=True,
         check=lambda v: None if v >= 0 and not math.isnan(v) else "must be >= 0 (inf: no upper bound)",
         examples=(1.0, 20.0), bad=-1.0, doc="a number >= 0 or inf (Euler's s_tmax)"),
    Axis("s_noise", "Sigma noise", "float", "batch", infotext="Sigma noise", arrow="float64", optional=True,
         check=lambda v: None if finite(v) and v > 0 else "must be a finite number > 0", examples=(0.9, 1.1),
         bad=0.0, doc="a finite number > 0 (Euler's s_noise)"),
    Axis("clip_skip", "Clip skip", "int", "encoding", infotext="Clip skip", arrow="int64",
         check=lambda v: None if v >= 1 else "is out of range; valid: 1..number of text-encoder layers",
         examples=(1, 2), bad=0, doc="an integer >= 1"),
    Axis("init_image", "Init image", "file", "trajectory", optional=True, splits=False,
         doc="an image file or a folder of them, or none"),
    Axis("strength", "Denoising strength", "float", "batch", infotext="Denoising strength", arrow="float64",
         optional=True, needs="init_image",
         check=lambda v: None if finite(v) and 0 < v <= 1 else "is not valid; valid: 0 < strength <= 1",
         examples=(0.6, 0.9), bad=1.5),
    # the hires fix (sdexp/hires.py): a second, img2img pass at the upscaled size; off while hires.scale is none
    Axis("hires_scale", "Hires upscale", "float", "batch", key="hires.scale", infotext="Hires upscale",
         arrow="float64", optional=True,
         check=lambda v: None if finite(v) and 1 <= v <= 8 else "is not valid; valid: 1 <= hires.scale <= 8, or null (no hires fix)",
         examples=(1.5, 2.0), bad=0.5, doc="a number 1..8 (the upscale factor), or null for no hires fix"),
    Axis("hires_steps", "Hires steps", "int", "batch", key="hires.steps", infotext="Hires steps", arrow="int64",
         optional=True, needs="hires_scale",
         check=lambda v: None if 0 <= v <= STEPS_MAX else f"must be >= 0 and <= {STEPS_MAX} (0: the job's steps)",
         examples=(2, 4), bad=-1, doc=f"an integer 0..{STEPS_MAX}; 0 takes the job's steps"),
    Axis("hires_strength", "Denoising strength", "float", "batch", key="hires.strength",
         infotext="Denoising strength", arrow="float64", optional=True, needs="hires_scale",
         check=lambda v: None if finite(v) and 0 < v <= 1 else "is not valid; valid: 0 < hires.strength <= 1",
         examples=(0.5, 1.0), bad=0.0, doc="a number 0 < strength <= 1"),
    Axis("hires_upscaler", "Hires upscaler", "choice", "trajectory", key="hires.upscaler", infotext="Hires upscaler",
         optional=True, needs="hires_scale", check=lambda v: check_upscaler(v), examples=("Latent", "Lanczos"),
         bad="ESRGAN_4x", doc="an upscaler alias or A1111 name (README, Hires fix)"),
    # the SDXL refiner (sdexp/refiner.py): the base denoises until refiner_switch, the refiner runs the rest
    Axis("refiner", "Refiner", "file", "model", infotext="Refiner", optional=True, splits=False,
         doc="an SDXL refiner or base model: a name from `checkpoints`, a diffusers folder, a Hugging Face id "
             "or tiny_sdxl_refiner; or none"),
    Axis("refiner_switch", "Refiner switch at", "float", "batch", infotext="Refiner switch at", arrow="float64",
         optional=True, needs="refiner",
         check=lambda v: None if finite(v) and 0 < v < 1 else "is not valid; valid: 0 < refiner_switch < 1 (the "
                                                              "fraction of the steps the base model runs)",
         examples=(0.5, 0.75), bad=1.0, doc="a number 0 < switch < 1 (A1111's default 0.8)"),
    Axis("prompt_sr", "Prompt S/R", "text", "label", optional=True, splits=False),
    Axis("seed", "Seed", "seed", "trajectory", infotext="Seed", arrow="int64", check=_seed, examples=(1, 2),
         bad=2**32, doc=f"an integer 0..{SEED_MAX}, a list of them, or -1 for random"),
    Axis("subseed", "Var. seed", "seed", "trajectory", infotext="Variation seed", arrow="int64", optional=True,
         needs="subseed_strength", check=_seed, examples=(5, 6), bad=-2),
    Axis("subseed_strength", "Var. strength", "float", "trajectory", infotext="Variation seed strength",
         arrow="float64", optional=True, off=0.0,
         check=lambda v: None if finite(v) and 0 <= v <= 1 else "is not valid; valid: 0 <= strength <= 1",
         examples=(0.3, 0.7), bad=2.0),
    Axis("rng", "RNG source", "choice", "batch", infotext="RNG", optional=True, off="cpu",
         check=lambda v: None if v in ("cpu", "gpu") else "is not valid; valid: cpu, gpu",
         examples=("cpu", "gpu"), bad="nv", doc="cpu or gpu"),
    Axis("prompt", "Prompt", "text", "encoding", splits=False),
    Axis("negative_prompt", "Negative prompt", "text", "encoding", splits=False),
    Axis("width", "Width", "int", "batch", arrow="int64",
         check=lambda v: None if v > 0 and v % 8 == 0 else f"must be a positive multiple of 8 (e.g. {max(8, v // 8 * 8)})",
         examples=(64, 72), bad=65),
    Axis("height", "Height", "int", "batch", arrow="int64",
         check=lambda v: None if v > 0 and v % 8 == 0 else f"must be a positive multiple of 8 (e.g. {max(8, v // 8 * 8)})",
         examples=(64, 72), bad=100),
    Axis("size", "Size", "size", "batch", infotext="Size", field=False, examples=("64x64", "72x64"), bad="64by64"),
    # facts that follow the axes above: fields of a cell, not grid axes
    Axis("embedding_token", "Embedding token", "fact", "encoding", optional=True, grid=False),
    Axis("prompt_template", "Prompt", "fact", "label", optional=True, grid=False),
    Axis("lcm_lora", "LCM-LoRA", "fact", "batch", optional=True, grid=False),
    Axis("extra_loras", "Extra LoRAs", "fact", "batch", optional=True, grid=False),
)
BY_NAME: dict[str, Axis] = {a.name: a for a in REGISTRY}
AXES: tuple[str, ...] = tuple(a.name for a in REGISTRY if a.grid)
FIELDS: tuple[Axis, ...] = tuple(a for a in REGISTRY if a.field)
AXIS_LABELS: dict[str, str] = {a.name: a.label for a in REGISTRY if a.grid}
AXIS_LABELS["prompt_template"] = "Prompt"
# config keys that set an axis other than by its name (config groups included)
_KEY_AXES = {**{a.config_key: a.name for a in REGISTRY if a.key}, "prompts": "prompt"}
# Columns that follow from another axis: not split into grids of their own when that axis is shown.
DERIVED = {"width": "size", "height": "size", "prompt": "prompt_sr", "negative_prompt": "prompt_sr"}


def label(axis: str) -> str:
    """'cfg' -> 'CFG scale'."""
    return AXIS_LABELS.get(axis, axis)


def axis_of_key(key: str) -> str | None:
    """The axis a command-line override or config key sets ('+checkpoint=...' -> 'model'), or None."""
    key = key.lstrip("+~").split("=", 1)[0]
    if key in _KEY_AXES:                  # a dotted axis key such as hires.scale
        return _KEY_AXES[key]
    key = key.split(".", 1)[0]
    name = _KEY_AXES.get(key, key)
    return name if name in AXES else None


def setting_axes() -> tuple[Axis, ...]:
    """The axes a job sets from its own config key, in one job taking lists and ranges."""
    return tuple(a for a in REGISTRY if a.grid and a.name not in ("prompt_sr",))


# ---------------------------------------------------------------- which axes are swept (one rule)

def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _follows(values: Mapping[str, list], axis: str, others: list[str]) -> bool:
    """True when `axis` is set by other axes (LCM's steps and CFG follow the sampler): one value for each
    combination of them. Axes of a full grid never follow others."""
    if axis not in ("steps", "cfg") or not others:
        return False
    seen: dict = {}
    columns = [values[o] for o in others]
    return all(seen.setdefault(tuple(c[i] for c in columns), v) == v for i, v in enumerate(values[axis]))


def swept(values: Mapping[str, Iterable], order: Iterable[str] = ()) -> list[str]:
    """The swept axes of a table of axis values (cells or rows): axes with more than one value, in the
    order given by `order` (override keys or axis names), then registry order.

    One rule for plan, grids, report, groups, tables and plots: an axis set by others (LCM's steps and
    CFG) is not swept; when Prompt S/R varies it is the axis, not the prompts it makes; width and height
    swept together are one "Size" axis unless the user swept width or height by name."""
    columns = {a: map_distinct(_plain, values[a]) for a in AXES if a in values}
    varying = [a for a in AXES if a in columns and len(set(columns[a])) > 1]
    keys = [axis_of_key(k) or k for k in order]
    varying = [a for i, a in enumerate(varying) if not _follows(columns, a, varying[:i])]
    if "prompt_sr" in varying:
        varying = [a for a in varying if a not in ("prompt", "negative_prompt")]
    if "size" in varying:
        named = set(keys)
        size_wins = "size" in named or ({"width", "height"} <= set(varying) and not {"width", "height"} & named)
        varying = [a for a in varying if a not in (("width", "height") if size_wins else ("size",))]
    ordered = [a for a in dict.fromkeys(keys) if a in varying]
    return ordered + [a for a in varying if a not in ordered]


def swept_columns(rows, order: Iterable[str] = ()) -> list[str]:
    """The swept axes of stored rows (a pandas DataFrame), by the same rule as a plan's; a column of one
    value is passed as that value alone (a store may hold 10^5 rows)."""
    return swept({a: rows[a].tolist() if rows[a].nunique(dropna=False) > 1 else rows[a].head(1).tolist()
                  for a in AXES if a in rows.columns}, order)


def unused(rows, axis: str) -> bool:
    """True when an optional axis is off in every row (only nulls or its off value): nothing to show."""
    spec = BY_NAME[axis]
    return spec.optional and all(_plain(v) in (None, spec.off) for v in rows[axis].unique())


def arrow_types() -> dict[str, str]:
    """{column: Arrow type name} of every registry column of a row."""
    return {a.name: a.arrow for a in REGISTRY}


def grid_axes(grid, swept_axes: list[str]) -> dict:
    """x, y, z of the grid: given ones must be swept axes; missing ones default to swept axes."""
    chosen = {k: grid[k] for k in ("x", "y", "z")}
    for k, v in chosen.items():
        if v is not None and v not in swept_axes:
            valid = ", ".join(swept_axes) if swept_axes else "none (nothing is swept)"
            raise ConfigError(f"grid.{k}={v!r} is not a swept axis; valid: {valid}")
    given = [v for v in chosen.values() if v is not None]
    if len(given) != len(set(given)):
        raise ConfigError(f"grid axes must differ; got x={chosen['x']!r}, y={chosen['y']!r}, z={chosen['z']!r}")
    # seed is shown per cell and prompts give one grid each, unless nothing else is swept
    free = [a for a in swept_axes if a not in given and a not in ("seed", "prompt")]
    free += [a for a in swept_axes if a == "prompt" and a not in given and len(free) < 2]
    for k in ("x", "y", "z"):
        if chosen[k] is None and free:
            chosen[k] = free.pop(0)
    return {**chosen, "seed": grid["seed"]}
