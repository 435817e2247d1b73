"""Model and VAE sources, loading, and the one bounded model cache.

A source is one of: a built-in tiny name, a diffusers folder, a single checkpoint file in the
original/A1111 layout, or a Hugging Face id (used as-is when the user has network or a cache).
Weights load from safetensors; pickled files only with `allow_pickle` (see single_file.py).
"""
from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from . import tiny, tiny_sdxl
from .hashing import path_sha256

FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODEL_BUILTINS = ("tiny", "tiny_sdxl", "tiny_sdxl_refiner")    # built-in model sources (sdexp.tiny, sdexp.tiny_sdxl)
SDXL_PIPELINES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")
BUILTIN_FOLDERS = ("shapes",)   # built-in diffusers folders shipped with sdexp (sdexp.shapes); load as folders


def source_path(source: str) -> Path:
    """A source as a path: a name of BUILTIN_FOLDERS is the folder it names (its VAE: folder/vae)."""
    if source in BUILTIN_FOLDERS:
        from .shapes import WEIGHTS_DIR

        return WEIGHTS_DIR / "model"
    return Path(source).expanduser()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    skeleton: str = "sd15"
    allow_pickle: bool = False


@dataclass(frozen=True)
class VaeSpec:
    name: str
    source: str | None          # None: the checkpoint's own VAE
    skeleton: str = "sd15"
    allow_pickle: bool = False


def classify_source(key: str, source: str, builtins: tuple[str, ...], allow_pickle: bool = False) -> str:
    """Return 'builtin', 'folder', 'file' or 'hub' for a source, or raise a ValueError naming the key."""
    valid = (f"valid: {', '.join(repr(b) for b in (*builtins, *BUILTIN_FOLDERS))}, a diffusers folder, a "
             f"{'/'.join(FILE_SUFFIXES)} file, or a Hugging Face id such as 'org/name'")
    if source in builtins:
        return "builtin"
    path = source_path(source)
    if path.is_dir():
        return "folder"
    if source in BUILTIN_FOLDERS:
        raise ValueError(f"{key}={source!r}: its weights are missing ({path}); rebuild them with "
                         f"`python scripts/train_shapes.py`")
    if path.suffix.lower() in FILE_SUFFIXES:
        if not path.is_file():
            raise ValueError(f"{key}={source!r}: file not found ({path.resolve()})")
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise ValueError(
                f"{key}={source!r} is a pickled checkpoint, which can run code when loaded; "
                f"convert it to .safetensors or set {key.rsplit('.', 1)[0]}.allow_pickle=true "
                f"(it is then read with torch.load(weights_only=True))")
        return "file"
    if _HF_ID.match(source) and not source.startswith((".", "/", "~")):
        return "hub"
    if any(sep in source for sep in ("/", "\\")) or path.suffix:
        raise ValueError(f"{key}={source!r}: no such file or folder ({path.resolve()}); {valid}")
    raise ValueError(f"{key}={source!r} is not a known name; {valid}")


def _config_json(spec: ModelSpec, kind: str, name: str) -> dict | None:
    """One JSON config of a folder, single-file skeleton or locally cached hub model (no weights)."""
    if kind == "hub":
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(spec.source, name, local_files_only=True))
        except Exception:
            return None
    elif kind == "file":
        from .single_file import SKELETONS_DIR

        shipped = SKELETONS_DIR / spec.skeleton
        path = (shipped if shipped.is_dir() else Path(spec.skeleton).expanduser()) / name
    else:
        path = source_path(spec.source) / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=None)
def model_family(spec: ModelSpec) -> str:
    """The model's family, "sdxl" or "sd1", from configs alone (model_index.json; a file's skeleton).

    A hub id that is not in the local cache is judged by its name ("xl" in it means SDXL)."""
    kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    if kind == "builtin":
        return "sdxl" if spec.source.startswith("tiny_sdxl") else "sd1"
    index = _config_json(spec, kind, "model_index.json")
    if index is None:
        return "sdxl" if kind == "hub" and "xl" in spec.source.lower() else "sd1"
    return "sdxl" if index.get("_class_name") in SDXL_PIPELINES else "sd1"


@lru_cache(maxsize=None)
def refiner_layout(spec: ModelSpec) -> bool:
    """True for an SDXL refiner-layout model (no first text encoder, as SDXL refiner 1.0), from configs
    alone. A hub id that is not in the local cache is judged by its name ("refiner" in it)."""
    kind = classify_source("refiner", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    if kind == "builtin":
        return spec.source == "tiny_sdxl_refiner"
    if kind == "file":
        return False
    index = _config_json(spec, kind, "model_index.json")
    if index is None:
        return kind == "hub" and "refiner" in spec.source.lower()
    return model_family(spec) == "sdxl" and (index.get("text_encoder") or [None])[0] is None


@lru_cache(maxsize=None)
def guidance_embedded(spec: ModelSpec) -> bool:
    """True for an LCM-distilled UNet (its config has `time_cond_proj_dim`): it takes the guidance scale
    as an embedding and runs no unconditional pass. From configs alone; False when unknown."""
    try:
        kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    except ValueError:
        return False
    config = None if kind == "builtin" else _config_json(spec, kind, "unet/config.json")
    return bool(config and config.get("time_cond_proj_dim"))


def runs_guidance(cfg: float, embedded: bool) -> bool:
    """Classifier-free guidance (a second, unconditional UNet pass) runs for CFG > 1, except on UNets that
    embed the guidance scale (LCM-distilled). The engine and the dry run both ask this."""
    return cfg > 1 and not embedded


def _text_encoder_names(spec: ModelSpec, sdxl: bool) -> tuple[str, ...]:
    if not sdxl:
        return ("text_encoder",)
    return ("text_encoder_2",) if refiner_layout(spec) else ("text_encoder", "text_encoder_2")


def _text_encoder_configs(spec: ModelSpec, kind: str, sdxl: bool) -> list[dict | None]:
    """The config.json of each text encoder (two for SDXL, one for its refiner), None where unreadable."""
    return [_config_json(spec, kind, f"{name}/config.json") for name in _text_encoder_names(spec, sdxl)]


def _builtin_text(spec: ModelSpec, sdxl_values: tuple, sd1_value):
    """A per-encoder value (widths, layers) of a built-in model: the refiner has text_encoder_2 alone."""
    if spec.source == "tiny_sdxl_refiner":
        return sdxl_values[1:]
    return tuple(sdxl_values) if spec.source == "tiny_sdxl" else (sd1_value,)


@lru_cache(maxsize=None)
def text_encoder_widths(spec: ModelSpec) -> tuple[int, ...] | None:
    """Hidden sizes of the text encoder(s), from configs alone (for embedding checks); None if unknown."""
    kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    sdxl = model_family(spec) == "sdxl"
    if kind == "builtin":
        return _builtin_text(spec, tiny_sdxl.HIDDEN, tiny.TEXT_WIDTH)
    configs = _text_encoder_configs(spec, kind, sdxl)
    if not all(c and "hidden_size" in c for c in configs):
        return None
    return tuple(int(c["hidden_size"]) for c in configs)


@lru_cache(maxsize=None)   # checked once per model, not once per job of a multirun
def text_encoder_layers(spec: ModelSpec) -> int | None:
    """The largest valid clip skip, read from configs alone (no weights), or None if unknown.

    SD1: the number of text-encoder layers. SDXL: min(layers of both text encoders) - 1, since
    its clip skip 1 is already the penultimate layer (sdexp.sdxl)."""
    from .sdxl import max_clip_skip

    kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    sdxl = model_family(spec) == "sdxl"
    if kind == "builtin":
        layers = _builtin_text(spec, tiny_sdxl.TEXT_LAYERS, tiny.TEXT_LAYERS)
        return max_clip_skip(layers) if sdxl else layers[0]
    configs = _text_encoder_configs(spec, kind, sdxl)
    if not all(c and "num_hidden_layers" in c for c in configs):
        return None
    layers = [int(c["num_hidden_layers"]) for c in configs]
    return max_clip_skip(layers) if sdxl else layers[0]


@dataclass
class LoadedModel:
    spec: ModelSpec
    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_config: dict
    source: str                 # what diffusers can load it from
    hash: str                   # sha256 of the weights
    vae_hash: str
    pipe: Any = None            # the diffusers pipeline (its LoRA and textual-inversion loaders)
    family: str = "sd1"         # "sd1" or "sdxl"
    tokenizer_2: Any = None     # SDXL's second tokenizer and text encoder (a refiner has these alone)
    text_encoder_2: Any = None
    aesthetic: bool = False     # SDXL refiner: its UNet takes an aesthetic score among its time ids
    zero_empty: bool = True     # SDXL: an empty negative prompt is zeros (force_zeros_for_empty_prompt)
    adapters: dict = field(default_factory=dict)   # LoRAs and embeddings loaded into it (lora.py, embeddings.py)

    @property
    def device(self) -> torch.device:
        return self.unet.device


def _pipeline_from_pretrained(source: str, allow_pickle: bool, dtype):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(
        source, safety_checker=None, requires_safety_checker=False, feature_extractor=None,
        use_safetensors=not allow_pickle, dtype=dtype,
    )


def _hub_folder(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def load_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype, channels_last: bool = False,
               compile: bool = False) -> LoadedModel:
    """Load a checkpoint onto a device; on CUDA optionally channels_last memory and torch.compile.

    SDXL checkpoints load as the pipeline their model_index.json names (StableDiffusionXLPipeline, or
    StableDiffusionXLImg2ImgPipeline for a refiner, whose first text encoder is None); their VAE stays
    in float32 when `dtype` is float16 and the VAE config asks for it (`force_upcast`, SDXL's VAE
    overflows in float16), as diffusers upcasts it to decode."""
    from .single_file import load_pipeline_file

    kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    if kind == "file":
        pipe = load_pipeline_file(spec.source, skeleton=spec.skeleton, allow_pickle=spec.allow_pickle)
        source = str(Path(spec.source).expanduser().resolve())
        model_hash = path_sha256(Path(source))
        vae_hash = model_hash
    else:
        if kind == "builtin":
            folder = {"tiny_sdxl": tiny_sdxl.tiny_sdxl_folder, "tiny_sdxl_refiner": tiny_sdxl.tiny_refiner_folder,
                      }.get(spec.source, tiny.tiny_model_folder)()
        elif kind == "folder":
            folder = source_path(spec.source).resolve()
        else:
            folder = None
        source = str(folder) if folder else spec.source
        if folder:
            pipeline_class = json.loads((folder / "model_index.json").read_text()).get("_class_name")
        else:
            from diffusers import DiffusionPipeline

            pipeline_class = DiffusionPipeline.load_config(spec.source).get("_class_name")  # the hub's model_index
        if pipeline_class in SDXL_PIPELINES:     # an SDXL base (txt2img) or refiner (img2img) pipeline
            import diffusers

            pipe = getattr(diffusers, pipeline_class).from_pretrained(
                source, use_safetensors=not spec.allow_pickle, dtype=dtype, add_watermarker=False)
        else:
            pipe = _pipeline_from_pretrained(source, spec.allow_pickle, dtype)
        folder = folder or _hub_folder(spec.source)
        model_hash = path_sha256(folder) if folder else ""
        vae_hash = path_sha256(folder / "vae") if folder and (folder / "vae").is_dir() else model_hash
    text_encoder_2 = getattr(pipe, "text_encoder_2", None)
    family = "sdxl" if text_encoder_2 is not None else "sd1"
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, text_encoder_2):
        if module is not None:
            module.to(device=device, dtype=dtype).eval()
    if family == "sdxl" and dtype == torch.float16 and pipe.vae.config.get("force_upcast", False):
        pipe.vae.to(dtype=torch.float32)
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if compile:  # batches are grouped by shape, so a sweep compiles once per batch shape
        pipe.unet = torch.compile(pipe.unet)
    return LoadedModel(
        spec=spec, tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, unet=pipe.unet, vae=pipe.vae,
        scheduler_config=dict(pipe.scheduler.config), source=source, hash=model_hash, vae_hash=vae_hash,
        pipe=pipe, family=family, tokenizer_2=getattr(pipe, "tokenizer_2", None), text_encoder_2=text_encoder_2,
        aesthetic=bool(pipe.config.get("requires_aesthetics_score", False)),
        zero_empty=bool(pipe.config.get("force_zeros_for_empty_prompt", True)),
    )


def load_vae(spec: VaeSpec, model: LoadedModel) -> tuple[Any, str, str]:
    """(vae, source, sha256) for a VAE spec; source None reuses the checkpoint's own VAE."""
    from diffusers import AutoencoderKL

    from .single_file import load_vae_file

    if spec.source is None:
        return model.vae, model.source, model.vae_hash
    kind = classify_source("vae.source", spec.source, tiny.TINY_VAES, spec.allow_pickle)
    if kind == "file":
        source = str(Path(spec.source).expanduser().resolve())
        vae = load_vae_file(source, skeleton=spec.skeleton, allow_pickle=spec.allow_pickle)
        vae_hash = path_sha256(Path(source))
    else:
        folder = tiny.tiny_vae_folder(spec.source) if kind == "builtin" else None
        if kind == "folder":
            folder = source_path(spec.source).resolve()
            if (folder / "vae" / "config.json").is_file():
                folder = folder / "vae"
        source = str(folder) if folder else spec.source
        vae = AutoencoderKL.from_pretrained(source, use_safetensors=not spec.allow_pickle)
        folder = folder or _hub_folder(spec.source)
        vae_hash = path_sha256(folder) if folder else ""
    # an SDXL VAE that overflows in float16 (config force_upcast) stays float32, as diffusers' SDXL
    # pipeline runs it (SD1 pipelines ignore the flag, which AutoencoderKL sets by default)
    upcast = (model.family == "sdxl" and model.unet.dtype == torch.float16
              and getattr(vae.config, "force_upcast", False))
    vae.to(device=model.unet.device, dtype=torch.float32 if upcast else model.unet.dtype).eval()
    return vae, source, vae_hash


class LoadError(RuntimeError):
    """A checkpoint or VAE that passed the plan's checks but could not be loaded (one line, exit 1)."""


def _loading(what: str, spec, load: Callable):
    """load(), with any library error turned into a LoadError naming the file and the reason."""
    try:
        return load()
    except (KeyboardInterrupt, MemoryError, LoadError):
        raise
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LoadError(f"{what} {spec.name!r} ({spec.source}) could not be loaded: {type(e).__name__}: {reason}"
                        ) from e


class ModelCache:
    """The one explicit, bounded cache of loaded checkpoints (least recently used goes first).

    VAEs are cached per checkpoint and dropped with it."""

    def __init__(self, max_resident: int = 1):
        if max_resident < 1:
            raise ValueError(f"run.max_resident_models={max_resident} must be >= 1")
        self.max_resident = max_resident
        self._models: OrderedDict[ModelSpec, LoadedModel] = OrderedDict()
        self._vaes: dict[tuple[ModelSpec, VaeSpec], tuple] = {}
        self.loads = 0
        self.loaded: list[str] = []     # the name of each checkpoint loaded, once per load

    def model(self, spec: ModelSpec, loader: Callable[[ModelSpec], LoadedModel]) -> LoadedModel:
        if spec in self._models:
            self._models.move_to_end(spec)
            return self._models[spec]
        while len(self._models) >= self.max_resident:
            old, _ = self._models.popitem(last=False)
            self._vaes = {k: v for k, v in self._vaes.items() if k[0] != old}
        self.loads += 1
        self.loaded.append(spec.name)
        self._models[spec] = _loading("checkpoint", spec, lambda: loader(spec))
        return self._models[spec]

    def holds(self, spec: ModelSpec) -> bool:
        return spec in self._models

    def vae(self, spec: VaeSpec, model: LoadedModel) -> tuple[Any, str, str]:
        key = (model.spec, spec)
        if key not in self._vaes:
            self._vaes[key] = _loading("VAE", spec, lambda: load_vae(spec, model))
        return self._vaes[key]
