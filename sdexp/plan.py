"""From composed job configs to cells (one per image, see cell.py), checked before anything loads.

Each job expands into views (job.py: one per combination of the values its axis keys list); each
view is checked, then turned into cells (one per init image, prompt row and seed).
"""
from __future__ import annotations

import copy
import secrets
from operator import attrgetter
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from . import resolve as r
from . import tiny
from .axes import AXES, BY_NAME, SEED_MAX, ConfigError, axis_of_key, grid_axes, swept  # noqa: F401 (re-exported)
from .axis_values import expand
from .cell import OPTIONAL_FIELDS, Cell, digest, shown_value  # noqa: F401  (re-exported)
from .config import unknown_keys
from .hires import get_upscaler, size_problem
from .img2img import steps_run
from .job import Job, JobView, Memo, job_container, settings
from .metrics.registry import METRICS
from .models import MODEL_BUILTINS, ModelSpec, classify_source, model_family, text_encoder_layers
from .named_files import OFF_VALUES
from .samplers import STEP_ARGUMENTS, check_sampler_settings, get_sampler, get_schedule

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
    ray: dict = field(default_factory=dict)    # the ray.* keys (run.backend=ray)
    dry_run: bool = False
    configs: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)     # printed before rendering; nothing stops


def _seeds(value) -> tuple[int, ...]:
    """The seeds of a job: ints, lists and A1111 ranges; -1 draws a random seed (once per plan)."""
    seeds = []
    for v in expand(r.hashable(value), "int", True):
        try:
            v = BY_NAME["seed"].convert(v)
        except ValueError:
            raise ValueError(f"seed={v!r} is not a valid seed; valid: an integer 0..{SEED_MAX}, a list or "
                             f"range of them, or -1 for random") from None
        seeds.append(secrets.randbelow(2**32) if v == -1 else v)
    return tuple(seeds)


def _check(cond: bool, message: str, errors: list[str]) -> None:
    if not cond:
        errors.append(message)


def check_run(cfg) -> list[str]:
    """Problems of the job-wide settings (keys, run, name, grid, lcm), naming key, value and valid choices.
    `cfg`: a job config, or its plain values (sdexp.job.Job.values), which read far faster."""
    errors: list[str] = list(unknown_keys(cfg))
    run = cfg.run
    bs = run.batch_size
    _check(bs == "auto" or (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1),
           f"run.batch_size={bs!r} is not valid; valid: 'auto' or an integer >= 1", errors)
    _check(run.max_resident_models >= 1, f"run.max_resident_models={run.max_resident_models} must be >= 1", errors)
    _check(run.dtype in DTYPES, f"run.dtype={run.dtype!r} is not valid; valid: {', '.join(DTYPES)}", errors)
    errors += check_backend(run.backend, cfg.ray)
    _check(str(cfg.name).strip() not in ("", ".", "..") and "/" not in str(cfg.name),
           f"name={cfg.name!r} must be a plain folder name", errors)
    seed_choice = cfg.grid.seed
    _check(seed_choice in ("first", "all") or (isinstance(seed_choice, int) and not isinstance(seed_choice, bool)),
           f"grid.seed={seed_choice!r} is not valid; valid: 'first', 'all' or a seed value", errors)
    _check(cfg.grid.metric is None or cfg.grid.metric in METRICS,
           f"grid.metric={cfg.grid.metric!r} is not a known metric; valid: {', '.join(METRICS)} or null", errors)
    _check(cfg.grid.max_pixels >= 1, f"grid.max_pixels={cfg.grid.max_pixels} must be >= 1", errors)
    _check(cfg.lcm.steps is None or cfg.lcm.steps >= 1, f"lcm.steps={cfg.lcm.steps} must be >= 1 or null", errors)
    _check(cfg.lcm.cfg is None or cfg.lcm.cfg >= 0, f"lcm.cfg={cfg.lcm.cfg} must be >= 0 or null", errors)
    return errors


BACKENDS = ("local", "ray")


def check_backend(backend, ray) -> list[str]:
    """Problems of run.backend and the ray.* keys."""
    errors: list[str] = []
    if backend not in BACKENDS:
        return [f"run.backend={backend!r} is not valid; valid: {', '.join(BACKENDS)}"]
    address = str(ray.address)
    _check(address in ("local", "auto") or ":" in address,
           f"ray.address={ray.address!r} is not valid; valid: local, auto, host:port or ray://host:port", errors)
    _check(ray.workers is None or ray.workers >= 1, f"ray.workers={ray.workers} must be >= 1 or null", errors)
    _check(ray.gpus_per_worker is None or ray.gpus_per_worker >= 0,
           f"ray.gpus_per_worker={ray.gpus_per_worker} must be >= 0 or null", errors)
    _check(ray.cpus_per_worker > 0, f"ray.cpus_per_worker={ray.cpus_per_worker} must be > 0", errors)
    if backend == "ray" and not errors:
        import importlib.util

        _check(importlib.util.find_spec("ray") is not None,
               "run.backend=ray needs Ray, which is not installed; valid: pip install 'sdexp[ray]', "
               "or run.backend=local", errors)
    return errors


def _clip_skip_error(model: ModelSpec, clip_skip: int) -> str | None:
    layers = text_encoder_layers(model)
    if clip_skip >= 1 and (layers is None or clip_skip <= layers):
        return None
    hi = layers if layers else "number of text-encoder layers"
    meaning = ("1 = SDXL's default, the penultimate layer of both text encoders" if model_family(model) == "sdxl"
               else "1 = last layer, 2 = penultimate")
    return f"clip_skip={clip_skip} is out of range; valid: 1..{hi} ({meaning})"


def _step_settings(view) -> tuple:
    """(key, value) of the step arguments (eta, s_churn, ...) a view sets."""
    return tuple((k, view[k]) for k in STEP_ARGUMENTS if view[k] is not None)


def _check_sampler_settings(sampler: str, schedule: str, step_settings: tuple) -> None:
    check_sampler_settings(get_sampler(sampler), get_schedule(schedule), step_settings)


def check_view(view: JobView, memo: Memo) -> list[str]:
    """Every problem of one view of a job (one value per axis), as messages naming key, value and choices."""
    errors: list[str] = []
    failed: set[str] = set()

    def attempt(key: str, fn, *args):
        """memo(fn, *args) or, when it raises a ValueError, None with its message recorded."""
        try:
            return memo(fn, *args)
        except ValueError as e:
            errors.append(str(e))
            failed.add(key)
            return None

    model = memo(r.model_spec, *r.model_args(view))
    vae = memo(r.vae_spec, *r.vae_args(view), model)
    sampler = attempt("sampler", get_sampler, view.sampler)
    schedule = attempt("schedule", get_schedule, view.schedule)
    attempt("model.source", classify_source, r.source_key(view, "checkpoint", "model.source"), model.source,
            MODEL_BUILTINS, bool(view.model.allow_pickle))
    if vae.source is not None:
        attempt("vae.source", classify_source, r.source_key(view, "vae_file", "vae.source"), vae.source,
                tiny.TINY_VAES, bool(view.vae.allow_pickle))
    rows = attempt("prompts", r.prompt_rows, *r.prompt_args(view))
    attempt("seed", _seeds, r.hashable(view.seed))
    attempt("size", r.size, *r.size_args(view), model)
    lora = attempt("lora", r.lora, view.lora, r.table(view.loras))
    attempt("lcm.lora", r.lcm_lora, view.lcm.lora, r.table(view.loras))
    attempt("extra_loras", r.extra_loras, r.table(view.extra_loras), r.table(view.loras), lora, view.lora)
    attempt("embedding", r.embedding, *r.embedding_args(view), model, rows)
    attempt("init_image", r.images, view.init_image)
    if view.init_image not in OFF_VALUES:
        _check(0 < view.strength <= 1 and steps_run(view.steps, view.strength) >= 1,
               f"strength={view.strength} is not valid with steps={view.steps}; valid: 0 < strength <= 1 with "
               f"int(steps * strength) >= 1 (img2img runs that many of the steps)", errors)
    errors += _hires_problems(view, memo, failed)
    if "model.source" not in failed:
        errors += _refiner_problems(view, memo, model)
    if sampler is not None and schedule is not None:
        attempt("schedule", _check_sampler_settings, view.sampler, view.schedule, _step_settings(view))
    if "size" not in failed:
        for key, v in zip(("width", "height"), memo(r.size, *r.size_args(view), model)):
            key = "size" if view.size is not None else key
            _check(v > 0 and v % 8 == 0, f"{key}={v} must be a positive multiple of 8 (e.g. {max(8, v // 8 * 8)})",
                   errors)
    if "model.source" not in failed:
        error = memo(_clip_skip_error, model, view.clip_skip)
        if error:
            errors.append(error)
    return errors


def _hires_problems(view: JobView, memo: Memo, failed: set) -> list[str]:
    """The hires fix's checks: txt2img only, a target size the UNet takes, at least one step run."""
    scale = view["hires.scale"]
    if scale is None:
        return []
    errors = []
    if view.init_image not in OFF_VALUES:
        errors.append(f"hires.scale={scale:g} is set with init_image={view.init_image!r}; the hires fix is a second "
                      f"pass after txt2img (as in A1111); valid: hires.scale=null for img2img, or no init_image")
    if "size" not in failed and "model.source" not in failed:
        problem = size_problem(*memo(r.size, *r.size_args(view), memo(r.model_spec, *r.model_args(view))), scale)
        if problem:
            errors.append(problem)
    steps = int(view["hires.steps"]) or int(view.steps)
    strength = float(view["hires.strength"])
    if steps_run(steps, strength) < 1:
        errors.append(f"hires.strength={strength:g} is not valid with {steps} hires steps; valid: "
                      f"int(steps * strength) >= 1 (the second pass runs that many of its steps)")
    return errors


def _refiner_problems(view: JobView, memo: Memo, model: ModelSpec) -> list[str]:
    """The refiner's checks: an SDXL model loadable from a folder or id, an SDXL base, a txt2img pass
    without the hires fix or an embedding, a clip skip the refiner's text encoder has."""
    try:
        refiner = memo(r.refiner_spec, view.refiner, r.table(view.checkpoints))
        if refiner is None:
            return []
        kind = memo(classify_source, r.source_key(view, "refiner", "refiner"), refiner.source, MODEL_BUILTINS)
    except ValueError as e:
        return [str(e)]
    shown = f"refiner={view.refiner!r}"
    if kind == "file":
        return [f"{shown} is a single checkpoint file; refiners load from diffusers folders only for now; valid: "
                f"a folder (saved with StableDiffusionXLImg2ImgPipeline.save_pretrained), a Hugging Face id, "
                f"tiny_sdxl_refiner, or none"]
    errors = []
    if memo(model_family, refiner) != "sdxl":
        errors.append(f"{shown} is not an SDXL model; valid: an SDXL refiner or base model, or none")
    if memo(model_family, model) != "sdxl":
        errors.append(f"{shown} is set with an SD1 checkpoint ({model.name}); the refiner finishes an SDXL base "
                      f"model's denoise; valid: an SDXL checkpoint, or refiner=none")
    for key, what in (("hires.scale", "the hires fix"), ("init_image", "img2img"), ("embedding", "an embedding")):
        if view[key] not in OFF_VALUES:
            errors.append(f"{shown} cannot be combined with {what} ({key}={view[key]!r}) yet; valid: {key}=null "
                          f"or refiner=none")
    if not errors:
        error = memo(_clip_skip_error, refiner, view.clip_skip)
        if error:
            errors.append(f"{error} (for {shown})")
    return errors


def _refiner(view: JobView, memo: Memo) -> dict:
    """The refiner fields of a view's cells (none while refiner is none)."""
    refiner = memo(r.refiner_spec, view.refiner, r.table(view.checkpoints))
    return {} if refiner is None else {"refiner": refiner, "refiner_switch": float(view.refiner_switch)}


def _hires(view: JobView) -> dict:
    """The hires fields of a view's cells (none while hires.scale is null)."""
    if view["hires.scale"] is None:
        return {}
    return {"hires_scale": float(view["hires.scale"]), "hires_steps": int(view["hires.steps"]),
            "hires_strength": float(view["hires.strength"]),
            "hires_upscaler": get_upscaler(view["hires.upscaler"]).name}


def _lcm(view, sampler: str, memo: Memo):
    """(LCM-LoRA, steps, cfg) of a view: LCM cells take what the `lcm` config gives them."""
    if sampler != "LCM":
        return None, int(view.steps), float(view.cfg)
    lcm = view.lcm
    return (memo(r.lcm_lora, lcm.lora, r.table(view.loras)), int(view.steps if lcm.steps is None else lcm.steps),
            float(view.cfg if lcm.cfg is None else lcm.cfg))


def view_cells(view: JobView, memo: Memo) -> list[Cell]:
    """The cells of a checked view: one per init image, prompt row and seed."""
    sampler = get_sampler(view.sampler).name
    schedule = get_schedule(view.schedule).name
    model = memo(r.model_spec, *r.model_args(view))
    vae = memo(r.vae_spec, *r.vae_args(view), model)
    lcm_lora, steps, guidance = _lcm(view, sampler, memo)
    lora = memo(r.lora, view.lora, r.table(view.loras))
    extra_loras = memo(r.extra_loras, r.table(view.extra_loras), r.table(view.loras), lora, view.lora)
    width, height = memo(r.size, *r.size_args(view), model)
    prompt_rows = memo(r.prompt_rows, *r.prompt_args(view))
    embedding = memo(r.embedding, *r.embedding_args(view), model, prompt_rows)
    token = str(view.embedding_token)
    strength = float(view.subseed_strength)
    variation = {"subseed": int(view.subseed), "subseed_strength": strength} if strength > 0 else {}
    steps_args = {k: float(v) for k, v in _step_settings(view)}
    hires = {**_hires(view), **_refiner(view, memo)}
    cells = []
    for init in memo(r.images, view.init_image):
        for value, template, prompt, negative in prompt_rows:
            uses_token = embedding is not None or token in prompt or token in negative
            for seed in memo(_seeds, r.hashable(view.seed)):   # drawn once: seed=-1 is one seed for the grid
                cells.append(Cell(
                    model, vae, sampler, steps, guidance, int(view.clip_skip),
                    seed, prompt, negative, width, height,
                    lora=lora, lora_weight=float(view.lora_weight) if lora else None,
                    embedding=embedding, embedding_token=token if uses_token else None,
                    init_image=init, strength=float(view.strength) if init else None,
                    prompt_sr=value, prompt_template=template if value is not None else None, lcm_lora=lcm_lora,
                    extra_loras=extra_loras, schedule=schedule, rng=str(view.rng), **variation, **steps_args,
                    **hires))
    return cells


def axis_of_override(key: str) -> str | None:
    return axis_of_key(key)


def _columns(cells: list[Cell], names: list[str]) -> dict[str, tuple]:
    """{field: its value in each cell}, read in one pass (a plan may hold 10^5 cells)."""
    if not cells:
        return {n: () for n in names}
    return dict(zip(names, zip(*map(attrgetter(*names), cells)))) if len(names) > 1 else \
        {names[0]: tuple(getattr(c, names[0]) for c in cells)}


def swept_axes(cells: list[Cell], override_keys: list[str] = ()) -> list[str]:
    """The swept axes of cells (as sdexp.axes.swept): an axis with one value is passed as that value alone,
    and values are converted once per distinct value."""
    names = [a for a in AXES if a != "size"]
    columns = _columns(cells, names)
    if len(set(columns["width"])) > 1 or len(set(columns["height"])) > 1:
        columns["size"] = tuple(f"{w}x{h}" for w, h in zip(columns["width"], columns["height"]))
    values = {}
    for name, column in columns.items():
        shown = {v: shown_value(v) for v in set(column)}
        values[name] = [shown[v] for v in column] if len(shown) > 1 else list(shown.values())
    return swept(values, override_keys)


def _check_names(cells: list[Cell]) -> None:
    names = ["model", "vae", "lora", "embedding", "init_image", "refiner"]
    columns = _columns(cells, names)
    for axis in names:
        by_name: dict = {}
        for value in set(columns[axis]):
            if value is not None:
                by_name.setdefault(value.name, set()).add(value.source)
        clash = {n: sorted(map(str, v)) for n, v in by_name.items() if len(v) > 1}
        if clash:
            name, sources = next(iter(clash.items()))
            raise ConfigError(f"{axis} name {name!r} stands for several files {sources}; grids and rows could not "
                              f"tell them apart; give each its own name (e.g. a table such as checkpoints/vaes/loras)")


# config key swept -> (the cell field it acts with, what the message calls it)
NEEDS = {"strength": ("init_image", "init_image (img2img)"), "lora_weight": ("lora", "a lora"),
         "subseed": ("subseed_strength", "subseed_strength > 0 (a variation strength)"),
         "refiner_switch": ("refiner", "a refiner"),
         **{a.config_key: ("hires_scale", "hires.scale (the hires fix)") for a in BY_NAME.values()
            if a.needs == "hires_scale"}}


def _check_needs(containers: list[dict], views: list[JobView], cells: list[Cell]) -> None:
    """An axis swept (several values) where what it acts with is off everywhere is an error: every value
    would render the same image."""
    if any(c["lcm"]["lora"] not in OFF_VALUES for c in containers) and not any(c.sampler == "LCM" for c in cells):
        raise ConfigError("lcm.lora is set but no job uses sampler=lcm; the LCM-LoRA only acts with the LCM sampler")
    for axis, (needs, what) in NEEDS.items():
        if len({r.hashable(v[axis]) for v in views}) > 1 and not any(getattr(c, needs) for c in cells):
            raise ConfigError(f"{axis} is swept but no job sets {what}; {axis} only acts with {what}")


SIZE_WARN_FACTOR = 2       # a side past this many times the model's native side gets a warning


def size_warnings(cells: list[Cell]) -> list[str]:
    """A warning for each model and image size with a side past SIZE_WARN_FACTOR x the side the model was
    trained at (64 px for the built-in tiny models, 512 for SD1, 1024 for SDXL): such images tend to
    repeat their subject and take far more memory and time."""
    out = []
    for model, (w, h) in dict.fromkeys((c.model, (c.width, c.height)) for c in cells):   # a hires first pass
        native = r.native_side(model)
        if native and max(w, h) > SIZE_WARN_FACTOR * native:
            out.append(f"size {w}x{h} is {max(w, h) / native:g}x the {native} px that model {model.name!r} was "
                       f"trained at; past {SIZE_WARN_FACTOR}x images tend to repeat their subject and need far "
                       f"more memory (hires.scale renders large images from a native-size first pass)")
    return out


def _check_grid_seed(grid: dict, cells: list[Cell]) -> None:
    choice = grid["seed"]
    if isinstance(choice, int) and not isinstance(choice, bool):
        seeds = sorted({c.seed for c in cells})
        if choice not in seeds:
            shown = ", ".join(map(str, seeds[:8])) + (", ..." if len(seeds) > 8 else "")
            raise ConfigError(f"grid.seed={choice} is not a seed of this sweep; valid: 'first', 'all' or one of "
                              f"{shown}")


def make_plan(cfgs: list[DictConfig], override_keys: list[str] = (), check_grid: bool = True) -> Plan:
    """Check every job, expand cells, resolve the grid. Raises ConfigError; touches no file."""
    errors: list[str] = []
    memo = Memo()
    views: list[JobView] = []
    containers = [job_container(c) for c in cfgs]   # read once: plan.configs too
    for cfg, container in zip(cfgs, containers):
        job = Job(cfg, container)
        job_errors = check_run(job.values)
        job_views = settings(cfg, job_errors, job)
        for view in job_views:
            job_errors += check_view(view, memo)
        errors += [e for e in dict.fromkeys(job_errors) if e not in errors]
        views += job_views
    if errors:
        raise ConfigError("\n".join(errors))
    folders = {str(Path(c["results_root"]) / c["name"]) for c in containers}
    if len(folders) > 1:
        raise ConfigError(f"name/results_root must be the same for every job of one sweep; got {sorted(folders)}")
    cells = list(dict.fromkeys(c for view in views for c in view_cells(view, memo)))
    _check_names(cells)
    _check_needs(containers, views, cells)
    swept_list = swept_axes(cells, override_keys)
    first = containers[0]
    grid = (grid_axes(first["grid"], swept_list) if check_grid
            else {**{k: first["grid"][k] for k in "xyz"}, "seed": first["grid"]["seed"]})
    _check_grid_seed(grid, cells)
    return Plan(warnings=size_warnings(cells),
        cells=cells, folder=Path(first["results_root"]) / first["name"], name=first["name"], swept=swept_list,
        grid=grid, run=copy.deepcopy(first["run"]), ray=copy.deepcopy(first["ray"]),
        scorer=copy.deepcopy(first["scorer"]), dry_run=bool(first["plan"]["dry_run"]),
        configs=containers,
    )
