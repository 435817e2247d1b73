"""From composed job configs to cells (one per image), checked before anything loads.

A cell is frozen and hashable and holds every axis. `cell_id` names a grid cell (all settings
except seed and prompt); `image_id` names one image (the grid cell plus prompt and seed).
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import tiny
from .axes import AXES, ConfigError, grid_axes  # noqa: F401  (re-exported)
from .metrics.registry import METRICS
from .models import ModelSpec, VaeSpec, classify_source, text_encoder_layers
from .prompts import prompt_set
from .samplers import get_sampler

DTYPES = ("auto", "float32", "float16", "bfloat16")


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    vae: VaeSpec
    sampler: str                # AUTOMATIC1111 name
    steps: int
    cfg: float
    clip_skip: int
    seed: int
    prompt: str
    negative_prompt: str
    width: int
    height: int

    def axis(self, name: str):
        """The value of an axis as grids and rows show it (model and VAE by name)."""
        value = getattr(self, name)
        return value.name if isinstance(value, (ModelSpec, VaeSpec)) else value

    @property
    def cell_id(self) -> str:
        d = asdict(self)
        d.pop("seed"), d.pop("prompt")
        return digest(d)

    @property
    def image_id(self) -> str:
        return digest([self.cell_id, self.prompt, self.seed])

    @property
    def trajectory(self) -> tuple:
        """Everything the denoise depends on: cells differing only in VAE share one trajectory."""
        return (self.model, self.sampler, self.steps, self.cfg, self.clip_skip, self.seed, self.prompt,
                self.negative_prompt, self.width, self.height)


@dataclass
class Plan:
    cells: list[Cell]
    folder: Path                # <results_root>/<name>
    name: str
    swept: list[str]            # axes with more than one value, in the order the user gave them
    grid: dict                  # x, y, z (axis or None) and seed
    run: dict
    scorer: dict
    dry_run: bool = False
    configs: list[dict] = field(default_factory=list)


def _seeds(value) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
    seeds = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < -1:
            raise ConfigError(f"seed={v!r} is not a valid seed; valid: an integer >= 0, a list of them, or -1 for random")
        seeds.append(secrets.randbelow(2**32) if v == -1 else v)
    return seeds


def _check(cond: bool, message: str, errors: list[str]) -> None:
    if not cond:
        errors.append(message)


def check_job(cfg: DictConfig) -> list[str]:
    """Every problem of one job config, as messages naming key, value and valid choices."""
    errors: list[str] = []
    for key, fn in (
        ("sampler", lambda: get_sampler(cfg.sampler)),
        ("model.source", lambda: classify_source("model.source", cfg.model.source, ("tiny",),
                                                 cfg.model.allow_pickle)),
        ("vae.source", lambda: cfg.vae.source is None or classify_source(
            "vae.source", cfg.vae.source, tiny.TINY_VAES, cfg.vae.allow_pickle)),
        ("prompts", lambda: prompt_set(cfg.prompt, cfg.prompts["items"], cfg.prompts.file)),
        ("seed", lambda: _seeds(cfg.seed)),
    ):
        try:
            fn()
        except ValueError as e:
            errors.append(str(e))
    _check(cfg.steps >= 1, f"steps={cfg.steps} must be >= 1", errors)
    _check(cfg.cfg >= 0, f"cfg={cfg.cfg} must be >= 0 (values <= 1 turn classifier-free guidance off)", errors)
    for key in ("width", "height"):
        v = cfg[key]
        _check(v > 0 and v % 8 == 0, f"{key}={v} must be a positive multiple of 8 (e.g. {max(8, v // 8 * 8)})", errors)
    if not any("model.source" in e for e in errors):
        layers = text_encoder_layers(_model_spec(cfg))
        hi = layers if layers else "number of text-encoder layers"
        _check(cfg.clip_skip >= 1 and (layers is None or cfg.clip_skip <= layers),
               f"clip_skip={cfg.clip_skip} is out of range; valid: 1..{hi} (1 = last layer, 2 = penultimate)",
               errors)
    run = cfg.run
    bs = run.batch_size
    _check(bs == "auto" or (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1),
           f"run.batch_size={bs!r} is not valid; valid: 'auto' or an integer >= 1", errors)
    _check(run.max_resident_models >= 1, f"run.max_resident_models={run.max_resident_models} must be >= 1", errors)
    _check(run.dtype in DTYPES, f"run.dtype={run.dtype!r} is not valid; valid: {', '.join(DTYPES)}", errors)
    _check(str(cfg.name).strip() not in ("", ".", "..") and "/" not in str(cfg.name),
           f"name={cfg.name!r} must be a plain folder name", errors)
    seed_choice = cfg.grid.seed
    _check(seed_choice in ("first", "all") or (isinstance(seed_choice, int) and not isinstance(seed_choice, bool)),
           f"grid.seed={seed_choice!r} is not valid; valid: 'first', 'all' or a seed value", errors)
    _check(cfg.grid.metric is None or cfg.grid.metric in METRICS,
           f"grid.metric={cfg.grid.metric!r} is not a known metric; valid: {', '.join(METRICS)} or null", errors)
    _check(cfg.grid.max_pixels >= 1, f"grid.max_pixels={cfg.grid.max_pixels} must be >= 1", errors)
    return errors


def _model_spec(cfg) -> ModelSpec:
    m = cfg.model
    return ModelSpec(m.name, str(m.source), str(m.skeleton), bool(m.allow_pickle))


def _vae_spec(cfg) -> VaeSpec:
    v = cfg.vae
    return VaeSpec(v.name, None if v.source is None else str(v.source), str(v.skeleton), bool(v.allow_pickle))


def job_cells(cfg: DictConfig) -> list[Cell]:
    sampler = get_sampler(cfg.sampler).name
    return [
        Cell(_model_spec(cfg), _vae_spec(cfg), sampler, int(cfg.steps), float(cfg.cfg), int(cfg.clip_skip),
             seed, prompt, str(cfg.negative_prompt), int(cfg.width), int(cfg.height))
        for prompt in prompt_set(cfg.prompt, cfg.prompts["items"], cfg.prompts.file)
        for seed in _seeds(cfg.seed)
    ]


def axis_of_override(key: str) -> str | None:
    key = key.lstrip("+~").split("=", 1)[0].split(".", 1)[0]
    if key in ("prompts",):
        return "prompt"
    return key if key in AXES else None


def swept_axes(cells: list[Cell], override_keys: list[str] = ()) -> list[str]:
    varying = [a for a in AXES if len({c.axis(a) for c in cells}) > 1]
    ordered = [a for a in dict.fromkeys(axis_of_override(k) for k in override_keys) if a in varying]
    return ordered + [a for a in varying if a not in ordered]


def make_plan(cfgs: list[DictConfig], override_keys: list[str] = (), check_grid: bool = True) -> Plan:
    """Check every job, expand cells, resolve the grid. Raises ConfigError; touches no file."""
    errors: list[str] = []
    for cfg in cfgs:
        errors += [e for e in check_job(cfg) if e not in errors]
    if errors:
        raise ConfigError("\n".join(errors))
    folders = {str(Path(c.results_root) / c.name) for c in cfgs}
    if len(folders) > 1:
        raise ConfigError(f"name/results_root must be the same for every job of one sweep; got {sorted(folders)}")
    cells = list(dict.fromkeys(c for cfg in cfgs for c in job_cells(cfg)))
    swept = swept_axes(cells, override_keys)
    first = cfgs[0]
    grid = (grid_axes(first.grid, swept) if check_grid
            else {**{k: first.grid[k] for k in "xyz"}, "seed": first.grid["seed"]})
    return Plan(
        cells=cells, folder=Path(first.results_root) / first.name, name=first.name, swept=swept,
        grid=grid, run=OmegaConf.to_container(first.run),
        scorer=OmegaConf.to_container(first.scorer), dry_run=bool(first.plan.dry_run),
        configs=[OmegaConf.to_container(c, resolve=True) for c in cfgs],
    )
