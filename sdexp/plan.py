"""From composed job configs to cells (one per image, see cell.py), checked before anything loads."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import tiny
from .axes import AXES, ConfigError, grid_axes  # noqa: F401  (re-exported)
from .metrics.registry import METRICS
from .cell import OPTIONAL_FIELDS, Cell, digest  # noqa: F401  (re-exported)
from .embeddings import EmbeddingSpec, resolve_embedding
from .img2img import init_images, steps_run
from .lora import LoraSpec, resolve_lora
from .models import FILE_SUFFIXES, MODEL_BUILTINS, ModelSpec, VaeSpec, classify_source, model_family, text_encoder_layers
from .named_files import OFF_VALUES
from .single_file import detect_skeleton
from .prompts import prompt_set, search_replace
from .samplers import get_sampler

DTYPES = ("auto", "float32", "float16", "bfloat16")


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
    failed: set[str] = set()

    def attempt(key: str, fn):
        """fn() or, when it raises a ValueError, None with its message recorded."""
        try:
            return fn()
        except ValueError as e:
            errors.append(str(e))
            failed.add(key)
            return None

    model = _model_spec(cfg)
    vae = _vae_spec(cfg, model)
    attempt("sampler", lambda: get_sampler(cfg.sampler))
    attempt("model.source", lambda: classify_source(_source_key(cfg, "checkpoint", "model.source"), model.source,
                                                    MODEL_BUILTINS, cfg.model.allow_pickle))
    attempt("vae.source", lambda: vae.source is None or classify_source(
        _source_key(cfg, "vae_file", "vae.source"), vae.source, tiny.TINY_VAES, cfg.vae.allow_pickle))
    rows = attempt("prompts", lambda: _prompt_rows(cfg))     # the prompt set, then prompt S/R
    attempt("seed", lambda: _seeds(cfg.seed))
    attempt("size", lambda: _size(cfg, model))
    lora = attempt("lora", lambda: resolve_lora(cfg.lora, cfg.loras))
    attempt("lcm.lora", lambda: resolve_lora(cfg.lcm.lora, cfg.loras, "lcm.lora"))
    attempt("extra_loras", lambda: _extra_loras(cfg, lora))
    attempt("embedding", lambda: _embedding(cfg, model, rows))
    attempt("init_image", lambda: init_images(cfg.init_image))
    if cfg.init_image not in OFF_VALUES:
        _check(0 < cfg.strength <= 1 and steps_run(cfg.steps, cfg.strength) >= 1,
               f"strength={cfg.strength} is not valid with steps={cfg.steps}; valid: 0 < strength <= 1 with "
               f"int(steps * strength) >= 1 (img2img runs that many of the steps)", errors)
    _check(cfg.steps >= 1, f"steps={cfg.steps} must be >= 1", errors)
    _check(cfg.lcm.steps is None or cfg.lcm.steps >= 1, f"lcm.steps={cfg.lcm.steps} must be >= 1 or null", errors)
    _check(cfg.lcm.cfg is None or cfg.lcm.cfg >= 0, f"lcm.cfg={cfg.lcm.cfg} must be >= 0 or null", errors)
    _check(cfg.cfg >= 0, f"cfg={cfg.cfg} must be >= 0 (values <= 1 turn classifier-free guidance off)", errors)
    if "size" not in failed:
        for key, v in zip(("width", "height"), _size(cfg, model)):
            key = "size" if cfg.size is not None else key
            _check(v > 0 and v % 8 == 0, f"{key}={v} must be a positive multiple of 8 (e.g. {max(8, v // 8 * 8)})",
                   errors)
    if "model.source" not in failed:
        layers = text_encoder_layers(model)
        hi = layers if layers else "number of text-encoder layers"
        meaning = ("1 = SDXL's default, the penultimate layer of both text encoders" if model_family(model) == "sdxl"
                   else "1 = last layer, 2 = penultimate")
        _check(cfg.clip_skip >= 1 and (layers is None or cfg.clip_skip <= layers),
               f"clip_skip={cfg.clip_skip} is out of range; valid: 1..{hi} ({meaning})", errors)
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


def _source_key(cfg, key: str, default: str) -> str:
    """The key an error names: `checkpoint`/`vae_file` (or its table entry) when set, else model/vae.source."""
    value = cfg[key]
    if value in OFF_VALUES:
        return default
    table = "checkpoints" if key == "checkpoint" else "vaes"
    return f"{table}.{value}" if value in (cfg[table] or {}) else key


def _named_source(value, table) -> tuple[str, str] | None:
    """(name, source) of a `checkpoint`/`vae_file` value: a name from its table, else a path (name: stem)."""
    if value in OFF_VALUES:
        return None
    value = str(value)
    if value in (table or {}):
        return value, str(table[value])
    return Path(value).stem, value


def _default_side(spec: ModelSpec) -> int | None:
    try:
        kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
        return 64 if kind == "builtin" else FAMILY_SIDE[model_family(spec)]
    except ValueError:      # a bad source is reported by check_job
        return None


def _model_spec(cfg) -> ModelSpec:
    m = cfg.model
    name, source = _named_source(cfg.checkpoint, cfg.checkpoints) or (m.name, m.source)
    skeleton = str(m.skeleton)
    if skeleton == "sd15" and cfg.checkpoint not in OFF_VALUES:
        skeleton = detect_skeleton(str(source)) or skeleton   # an SDXL file needs no model.skeleton=sdxl
    return ModelSpec(name, str(source), skeleton, bool(m.allow_pickle))


def _vae_spec(cfg, model: ModelSpec) -> VaeSpec:
    v = cfg.vae
    name, source = _named_source(cfg.vae_file, cfg.vaes) or (v.name, v.source)
    skeleton = str(v.skeleton)
    if skeleton == "sd15" and source is not None and str(source).lower().endswith(FILE_SUFFIXES) \
            and _family_or_none(model) == "sdxl":
        skeleton = "sdxl"        # a VAE file for an SDXL model: SDXL's VAE config (scaling factor 0.13025)
    return VaeSpec(name, None if source is None else str(source), skeleton, bool(v.allow_pickle))


def _family_or_none(spec: ModelSpec) -> str | None:
    try:
        return model_family(spec)
    except ValueError:      # a bad source is reported by check_job
        return None


_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


FAMILY_SIDE = {"sd1": 512, "sdxl": 1024}   # the size each family was trained at


def _size(cfg, model: ModelSpec) -> tuple[int, int]:
    """(width, height): from `size` ("WxH") when given, else from width and height. Width and height
    not set by the user follow the model: with `checkpoint`, the checkpoint's family (512 for SD1,
    1024 for SDXL, 64 for the tiny models) replaces the model group's size."""
    if cfg.size is None:
        width, height = int(cfg.width), int(cfg.height)
        if cfg.checkpoint not in OFF_VALUES:
            side = _default_side(model)
            if side and OmegaConf.is_interpolation(cfg, "width"):
                width = side
            if side and OmegaConf.is_interpolation(cfg, "height"):
                height = side
        return width, height
    m = _SIZE.fullmatch(str(cfg.size))
    if not m:
        raise ValueError(f"size={cfg.size!r} is not valid; valid: WIDTHxHEIGHT such as 512x768")
    return int(m[1]), int(m[2])


def _prompt_rows(cfg) -> list[tuple]:
    prompts = prompt_set(cfg.prompt, cfg.prompts["items"], cfg.prompts.file)
    sr = None if cfg.prompt_sr is None else list(cfg.prompt_sr)
    return search_replace(sr, prompts, str(cfg.negative_prompt))


def _embedding(cfg, model: ModelSpec, prompt_rows: list[tuple] | None) -> EmbeddingSpec | None:
    """The job's embedding, checked against the model and against `prompt_rows` (the job's
    search_replace rows; None when the prompts are bad, which is reported on its own)."""
    token = str(cfg.embedding_token)
    if not token.strip():
        raise ValueError(f"embedding_token={token!r} must not be empty; valid: a word such as <embedding>")
    spec = resolve_embedding(cfg.embedding, cfg.embeddings, token, bool(cfg.allow_pickle_embeddings), model)
    if spec is not None and prompt_rows is not None:
        missing = [p for _, _, p, n in prompt_rows if token not in p and token not in n]
        if missing:
            raise ValueError(f"embedding={cfg.embedding!r}: its trigger token embedding_token={token!r} is in "
                             f"neither the prompt nor the negative prompt of {missing[:3]}; put the token where "
                             f"the embedding should act")
    return spec


def _extra_loras(cfg, lora: LoraSpec | None) -> tuple | None:
    """The `extra_loras` of a job: ((LoraSpec, weight), ...), names from `loras`, or None. `lora` is the
    job's swept LoRA, which may not also be an extra."""
    extra = dict(cfg.extra_loras or {})
    if not extra:
        return None
    out = []
    for name, weight in extra.items():
        if name not in (cfg.loras or {}):
            names = ", ".join(repr(n) for n in (cfg.loras or {})) or "none defined"
            raise ValueError(f"extra_loras.{name}={weight}: {name!r} is not a name in loras ({names}); "
                             f"add it with +loras.{name}=/path/to/file.safetensors")
        out.append((resolve_lora(name, cfg.loras, f"extra_loras.{name}"), float(weight)))
    if lora is not None and any(spec == lora for spec, _ in out):
        raise ValueError(f"lora={cfg.lora!r} is also in extra_loras; a LoRA is either the swept one or an extra")
    return tuple(out)


def _lcm(cfg, sampler: str) -> tuple[LoraSpec | None, int, float]:
    """(LCM-LoRA, steps, cfg) of a job: LCM cells take what the `lcm` config gives them."""
    if sampler != "LCM":
        return None, int(cfg.steps), float(cfg.cfg)
    lcm = cfg.lcm
    return (resolve_lora(lcm.lora, cfg.loras, "lcm.lora"), int(cfg.steps if lcm.steps is None else lcm.steps),
            float(cfg.cfg if lcm.cfg is None else lcm.cfg))


def job_cells(cfg: DictConfig) -> list[Cell]:
    sampler = get_sampler(cfg.sampler).name
    model = _model_spec(cfg)
    vae = _vae_spec(cfg, model)
    lcm_lora, steps, guidance = _lcm(cfg, sampler)
    lora = resolve_lora(cfg.lora, cfg.loras)
    extra_loras = _extra_loras(cfg, lora)
    width, height = _size(cfg, model)
    prompt_rows = _prompt_rows(cfg)
    embedding = _embedding(cfg, model, prompt_rows)
    token = str(cfg.embedding_token)
    seeds = _seeds(cfg.seed)    # drawn once, so seed=-1 gives every prompt the same random seed
    cells = []
    for init in init_images(cfg.init_image):
        for value, template, prompt, negative in prompt_rows:
            uses_token = embedding is not None or token in prompt or token in negative
            for seed in seeds:
                cells.append(Cell(
                    model, vae, sampler, steps, guidance, int(cfg.clip_skip),
                    seed, prompt, negative, width, height,
                    lora=lora, lora_weight=float(cfg.lora_weight) if lora else None,
                    embedding=embedding, embedding_token=token if uses_token else None,
                    init_image=init, strength=float(cfg.strength) if init else None,
                    prompt_sr=value, prompt_template=template if value is not None else None, lcm_lora=lcm_lora,
                    extra_loras=extra_loras))
    return cells


def axis_of_override(key: str) -> str | None:
    key = key.lstrip("+~").split("=", 1)[0].split(".", 1)[0]
    if key in ("prompts",):
        return "prompt"
    if key in ("checkpoint", "vae_file"):
        return {"checkpoint": "model", "vae_file": "vae"}[key]
    return key if key in AXES else None


def _follows(cells: list[Cell], axis: str, others: list[str]) -> bool:
    """True when `axis` is set by other axes (LCM's steps and CFG follow the sampler): one value for each
    combination of them. Axes of a full grid never follow others."""
    if axis not in ("steps", "cfg") or not others:
        return False
    seen: dict = {}
    return all(seen.setdefault(tuple(c.axis(o) for o in others), c.axis(axis)) == c.axis(axis) for c in cells)


def swept_axes(cells: list[Cell], override_keys: list[str] = ()) -> list[str]:
    varying = [a for a in AXES if len({c.axis(a) for c in cells}) > 1]
    keys = {axis_of_override(k) for k in override_keys}
    varying = [a for i, a in enumerate(varying) if not _follows(cells, a, varying[:i])]
    if "prompt_sr" in varying:         # prompts differ because of the S/R value: it is the axis
        varying = [a for a in varying if a not in ("prompt", "negative_prompt")]
    if "size" in varying:              # one "Size: WxH" axis, unless width or height alone was swept
        size_wins = "size" in keys or ({"width", "height"} <= set(varying) and not {"width", "height"} & keys)
        varying = [a for a in varying if a not in (("width", "height") if size_wins else ("size",))]
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
    for axis in ("model", "vae", "lora", "embedding", "init_image"):
        by_name: dict = {}
        for c in cells:
            value = getattr(c, axis)
            if value is not None:
                by_name.setdefault(value.name, set()).add(value.source)
        clash = {n: sorted(map(str, v)) for n, v in by_name.items() if len(v) > 1}
        if clash:
            name, sources = next(iter(clash.items()))
            raise ConfigError(f"{axis} name {name!r} stands for several files {sources}; grids and rows could not "
                              f"tell them apart; give each its own name (e.g. a table such as checkpoints/vaes/loras)")
    if any(c.lcm.lora not in OFF_VALUES for c in cfgs) and not any(c.sampler == "LCM" for c in cells):
        raise ConfigError("lcm.lora is set but no job uses sampler=lcm; the LCM-LoRA only acts with the LCM sampler")
    swept_keys = {axis_of_override(k) for k in override_keys}
    for axis, needs, what in (("strength", "init_image", "init_image (img2img)"), ("lora_weight", "lora", "a lora")):
        if axis in swept_keys and not any(getattr(c, needs) for c in cells):
            raise ConfigError(f"{axis} is swept but no job sets {what}; {axis} only acts with {what}")
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
