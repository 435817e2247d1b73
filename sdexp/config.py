"""Typed config schemas, registered in Hydra's ConfigStore so a misspelt key or a wrong type
fails at compose time. The YAML files under conf/ fill these in."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ModelConf:
    name: str = "tiny"                 # label in grids, rows and image metadata
    source: str = "tiny"               # "tiny", a diffusers folder, a .safetensors file, or a HF id
    skeleton: str = "sd15"             # configs for a single-file checkpoint: "sd15" or a folder
    allow_pickle: bool = False         # permit .ckpt/.pt files (read with torch.load(weights_only=True))
    width: int = 512                   # default image size for this model
    height: int = 512


@dataclass
class VaeConf:
    name: str = "Automatic"            # label; "Automatic" is the checkpoint's own VAE, as in A1111
    source: Optional[str] = None       # None: the checkpoint's VAE; "tiny"/"tiny_alt", folder, file or HF id
    skeleton: str = "sd15"
    allow_pickle: bool = False


@dataclass
class PromptsConf:
    items: list[str] = field(default_factory=list)  # prompts given inline
    file: Optional[str] = None         # or a .txt (one per line), .csv (column "prompt") or .yaml list


@dataclass
class ScorerConf:
    enabled: bool = True
    source: str = "tiny"               # "tiny", a CLIP folder or HF id such as openai/clip-vit-large-patch14


@dataclass
class GridConf:
    x: Optional[str] = None            # axis for columns; default: the first swept axis
    y: Optional[str] = None            # axis for rows; default: the second swept axis
    z: Optional[str] = None            # one sub-grid per value; default: the third swept axis
    seed: Any = "first"                # what each cell shows: "first" (smallest seed), "all" (every seed
                                       # side by side, a strip) or one seed value
    metric: Optional[str] = "clip_score"  # written under each cell ("CLIP 31.2 +/- 0.8"); null: none
    max_pixels: int = 32_000_000       # a larger grid is split into pages (sub-grids, then rows, then columns)


@dataclass
class RunConf:
    device: str = "auto"               # auto, cpu, cuda, cuda:N, mps
    dtype: str = "auto"                # auto (float16 on CUDA, float32 elsewhere), float32, float16, bfloat16
    batch_size: Any = "auto"           # images denoised together: "auto" (from free memory) or an int
    max_resident_models: int = 1       # checkpoints kept in memory at once
    progress: bool = True
    channels_last: bool = True         # CUDA only: channels_last memory format for the UNet
    compile: bool = False              # CUDA only: torch.compile the UNet (once per batch shape)
    backend: str = "local"             # local (this process) or ray (work units on Ray actors; README, "Ray")


@dataclass
class RayConf:
    """run.backend=ray: where the actors run and what each holds (README, "Ray")."""
    address: str = "local"             # local (start a cluster on this machine), auto (join the running one)
                                       # or a cluster address (host:port, ray://host:port)
    workers: Optional[int] = None      # actors; null: one per GPU of the cluster (per cpus_per_worker CPUs without GPUs)
    gpus_per_worker: Optional[float] = None   # null: 1 on a cluster with GPUs, 0 without
    cpus_per_worker: float = 1         # also each actor's torch threads (rounded, at least 1)


@dataclass
class LcmConf:
    """What `sampler=lcm` brings with it, so LCM can be one value of a sampler axis."""
    lora: Any = None                   # an LCM-LoRA (name from `loras` or file), added at weight 1 to LCM cells
    steps: Optional[int] = None        # steps of LCM cells (e.g. 4); null: the job's steps
    cfg: Optional[float] = None        # CFG of LCM cells (e.g. 1.5); null: the job's cfg


@dataclass
class HiresConf:
    """The hires fix (README, "Hires fix and the SDXL refiner"): each key is an axis (lists, ranges)."""
    scale: Any = None                  # upscale factor 1..8; null: no hires fix (one pass)
    steps: Any = 0                     # second-pass steps; 0: the job's steps
    strength: Any = 0.7                # second-pass denoising strength, 0 < strength <= 1 (A1111's default 0.7)
    upscaler: Any = "latent"           # latent, latent_antialiased, latent_bicubic, ..., lanczos, nearest


@dataclass
class PlanConf:
    dry_run: bool = False              # print cells, work units and an estimate; render nothing


@dataclass
class SdexpConfig:
    name: str = "default"              # results go to <results_root>/<name>/
    results_root: str = "results"
    model: ModelConf = field(default_factory=ModelConf)
    vae: VaeConf = field(default_factory=VaeConf)
    prompts: PromptsConf = field(default_factory=PromptsConf)
    scorer: ScorerConf = field(default_factory=ScorerConf)
    grid: GridConf = field(default_factory=GridConf)
    run: RunConf = field(default_factory=RunConf)
    ray: RayConf = field(default_factory=RayConf)
    plan: PlanConf = field(default_factory=PlanConf)
    lcm: LcmConf = field(default_factory=LcmConf)
    hires: HiresConf = field(default_factory=HiresConf)
    # Axes (README, "Axes"): each takes one value, a list (cfg='[3,5,7]') or an A1111 range (steps='10-30 (+10)')
    # inside one job; types are checked by the axis registry (sdexp/axes.py), not here.
    sampler: Any = "euler_a"           # alias (euler_a) or AUTOMATIC1111 name ("Euler a")
    schedule: Any = "automatic"        # A1111's Schedule type: automatic (the sampler's own), karras, exponential, ...
    steps: Any = 20
    cfg: Any = 7.0                     # classifier-free guidance scale; <= 1 skips the negative pass
    clip_skip: Any = 1                 # AUTOMATIC1111 convention: 1 = last text-encoder layer
    seed: Any = 0                      # an int, a list or range of ints, or -1 for a random seed
    subseed: Any = 0                   # Variation seed: its noise is slerped into the seed's ...
    subseed_strength: Any = 0.0        # ... by this much (0: off, 1: the variation seed's noise alone)
    rng: Any = "cpu"                   # RNG source: cpu, or gpu (noise drawn on the render device, A1111's default)
    eta: Any = None                    # DDIM's eta (null: the scheduler's default)
    s_churn: Any = None                # Euler's sigma churn, tmin, tmax and noise (null: the scheduler's defaults)
    s_tmin: Any = None
    s_tmax: Any = None
    s_noise: Any = None
    prompt: Any = None                 # one prompt (commas are part of it), or a list of prompts; overrides the set
    negative_prompt: Any = ""
    width: Any = "${model.width}"
    height: Any = "${model.height}"
    checkpoint: Any = None               # a name from `checkpoints` or a checkpoint file; overrides model.name/source
    checkpoints: Dict[str, str] = field(default_factory=dict)  # name -> checkpoint file or folder
    vae_file: Any = None               # a name from `vaes` or a VAE file; overrides vae.name/source
    vaes: Dict[str, str] = field(default_factory=dict)         # name -> VAE file or folder
    size: Any = None                   # "WxH" (e.g. 512x768); overrides width and height; an axis
    prompt_sr: Optional[List[str]] = None  # Prompt S/R: [search, replacement, ...]; the search text is the first value
    lora: Any = None                   # a name from `loras`, a .safetensors path, or none
    lora_weight: Any = 1.0             # the LoRA's scale (A1111's <lora:name:weight>)
    loras: Dict[str, str] = field(default_factory=dict)       # name -> .safetensors file
    extra_loras: Dict[str, float] = field(default_factory=dict)  # name (from `loras`) -> weight, on every cell
    embedding: Any = None              # a name from `embeddings`, an embedding file, or none
    embedding_token: str = "<embedding>"  # the trigger token prompts carry; bound to the embedding
    embeddings: Dict[str, str] = field(default_factory=dict)  # name -> .safetensors (or .pt) file
    allow_pickle_embeddings: bool = False  # permit .pt/.bin embeddings (read with weights_only=True)
    init_image: Any = None             # img2img: an image file or a folder of them (each image an axis value)
    strength: Any = 0.75               # img2img denoising strength, 0 < strength <= 1
    refiner: Any = None                # SDXL refiner: a name from `checkpoints`, a diffusers folder, a HF id, or none
    refiner_switch: Any = 0.8          # the fraction of the steps the base runs before the refiner (A1111's default)


# Maps made for new keys: `+checkpoints.NAME=...` adds an entry; anywhere else a key outside the schema is a typo.
OPEN_MAPS = ("checkpoints", "vaes", "loras", "embeddings", "extra_loras")


def _schema_keys(schema) -> dict:
    """{field: nested schema or None} of a dataclass schema."""
    import dataclasses

    hints = {f.name: f for f in dataclasses.fields(schema)}
    out = {}
    for name, f in hints.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        out[name] = type(default) if dataclasses.is_dataclass(default) else None
    return out


def _unknown(key: str, known, prefix: str) -> str:
    import difflib

    near = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {prefix}{near[0]}?" if near else ""
    return f"{prefix}{key} is not a config key{hint} (valid: {', '.join(prefix + k for k in known)})"


def key_problem(key: str) -> str | None:
    """Why a dotted config key (`grid.x`, `samplr`) is not in the schema, or None. Keys under the maps made
    for new entries (checkpoints, vaes, loras, embeddings, extra_loras) and under hydra are free."""
    schema, prefix = SdexpConfig, ""
    parts = key.split(".")
    if parts[0] in ("hydra", "sweep") or "/" in parts[0]:
        return None
    for i, part in enumerate(parts):
        known = _schema_keys(schema)
        if part not in known:
            return _unknown(part, known, prefix)
        if part in OPEN_MAPS and not prefix or known[part] is None:
            return None
        schema, prefix = known[part], f"{prefix}{part}."
    return None


def unknown_keys(cfg, schema=None, prefix: str = "") -> list[str]:
    """Messages for keys of a composed config that the schema does not have, with the nearest valid key."""
    schema = schema or SdexpConfig
    known = _schema_keys(schema)
    errors = []
    for key in cfg.keys() if hasattr(cfg, "keys") else ():
        if key == "hydra" and not prefix:
            continue
        if key not in known:
            errors.append(_unknown(key, known, prefix))
        elif known[key] is not None and key not in OPEN_MAPS:
            errors += unknown_keys(cfg[key], known[key], f"{prefix}{key}.")
    return errors


def register() -> None:
    ConfigStore.instance().store(name="sdexp_schema", node=SdexpConfig)
