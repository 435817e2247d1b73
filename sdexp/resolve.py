"""What a job's values stand for: model and VAE specs, size, prompt rows, LoRAs and embeddings.

Each resolver takes plain hashable arguments (the `*_args(view)` helpers pick them from a job view),
so the planner's `Memo` runs it once per distinct input. Errors are ValueErrors naming the key.
"""
from __future__ import annotations

import re
from pathlib import Path

from .embeddings import EmbeddingSpec, resolve_embedding
from .img2img import init_images
from .lora import LoraSpec, resolve_lora
from .models import FILE_SUFFIXES, MODEL_BUILTINS, ModelSpec, VaeSpec, classify_source, model_family
from .metadata import prompt_problem
from .named_files import OFF_VALUES
from .prompts import prompt_set, search_replace
from .single_file import detect_skeleton

FAMILY_SIDE = {"sd1": 512, "sdxl": 1024}   # the size each family was trained at
_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def table(value) -> tuple:
    """A config table ({name: path}) as a hashable tuple of pairs."""
    return tuple((str(k), v) for k, v in (value or {}).items())


def hashable(value):
    """A config value as a hashable one (lists as tuples)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return tuple(hashable(v) for v in value)
    return value


def source_key(view, key: str, default: str) -> str:
    """The key an error names: `checkpoint`/`vae_file`/`refiner` (or its table entry) when set, else the default."""
    value = view[key]
    if value in OFF_VALUES:
        return default
    names = "checkpoints" if key in ("checkpoint", "refiner") else "vaes"
    return f"{names}.{value}" if value in (view[names] or {}) else key


def _named_source(value, names: tuple) -> tuple[str, str] | None:
    """(name, source) of a `checkpoint`/`vae_file` value: a name from its table, else a path (name: stem)."""
    if value in OFF_VALUES:
        return None
    value = str(value)
    found = dict(names)
    if value in found:
        return value, str(found[value])
    return Path(value).stem, value


def model_args(view) -> tuple:
    m = view.model
    return view.checkpoint, table(view.checkpoints), m.name, m.source, str(m.skeleton), bool(m.allow_pickle)


def model_spec(checkpoint, names, name, source, skeleton, allow_pickle) -> ModelSpec:
    name, source = _named_source(checkpoint, names) or (name, source)
    if skeleton == "sd15" and checkpoint not in OFF_VALUES:
        skeleton = detect_skeleton(str(source)) or skeleton   # an SDXL file needs no model.skeleton=sdxl
    return ModelSpec(name, str(source), skeleton, allow_pickle)


def refiner_spec(refiner, names) -> ModelSpec | None:
    """The SDXL refiner of a `refiner` value (a name from `checkpoints`, a folder, an id), or None."""
    found = _named_source(refiner, names)
    return None if found is None else ModelSpec(found[0], str(found[1]))


def vae_args(view) -> tuple:
    v = view.vae
    return view.vae_file, table(view.vaes), v.name, v.source, str(v.skeleton), bool(v.allow_pickle)


def vae_spec(vae_file, names, name, source, skeleton, allow_pickle, model: ModelSpec) -> VaeSpec:
    name, source = _named_source(vae_file, names) or (name, source)
    if skeleton == "sd15" and source is not None and str(source).lower().endswith(FILE_SUFFIXES) \
            and family_or_none(model) == "sdxl":
        skeleton = "sdxl"        # a VAE file for an SDXL model: SDXL's VAE config (scaling factor 0.13025)
    return VaeSpec(name, None if source is None else str(source), skeleton, allow_pickle)


def family_or_none(spec: ModelSpec) -> str | None:
    try:
        return model_family(spec)
    except ValueError:      # a bad source is reported by the checks
        return None


def native_side(spec: ModelSpec) -> int | None:
    """The side (px) a model was trained at: its UNet's sample_size x 8 where its configs say (the shapes
    model: 64), else its family's; None when unknown."""
    from .models import _config_json

    try:
        kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
    except ValueError:
        return None
    config = None if kind == "builtin" else _config_json(spec, kind, "unet/config.json")
    size = (config or {}).get("sample_size")
    return int(size) * 8 if isinstance(size, int) else _default_side(spec)


def _default_side(spec: ModelSpec) -> int | None:
    try:
        kind = classify_source("model.source", spec.source, MODEL_BUILTINS, spec.allow_pickle)
        return 64 if kind == "builtin" else FAMILY_SIDE[model_family(spec)]
    except ValueError:      # a bad source is reported by the checks
        return None


def size_args(view) -> tuple:
    return (view.size, int(view.width), int(view.height), view.checkpoint not in OFF_VALUES,
            view.follows_model("width"), view.follows_model("height"))


def size(value, width, height, checkpoint_set, width_follows, height_follows, model: ModelSpec) -> tuple[int, int]:
    """(width, height): from `size` ("WxH") when given, else from width and height. Width and height
    not set by the user follow the model: with `checkpoint`, the checkpoint's family (512 for SD1,
    1024 for SDXL, 64 for the tiny models) replaces the model group's size."""
    if value is None:
        if checkpoint_set:
            side = _default_side(model)
            width = side if side and width_follows else width
            height = side if side and height_follows else height
        return width, height
    m = _SIZE.fullmatch(str(value))
    if not m:
        raise ValueError(f"size={value!r} is not valid; valid: WIDTHxHEIGHT such as 512x768")
    return int(m[1]), int(m[2])


def prompt_args(view) -> tuple:
    return (view.prompt, hashable(view.prompts["items"]), view.prompts.file,
            None if view.prompt_sr is None else hashable(view.prompt_sr), str(view.negative_prompt))


def prompt_rows(prompt, items, file, sr, negative) -> tuple:
    prompts = prompt_set(prompt, items, file)
    rows = tuple(search_replace(None if sr is None else list(sr), prompts, negative))
    for _, _, text, neg in rows:
        problem = prompt_problem(text, "prompt") or prompt_problem(neg, "negative_prompt")
        if problem:
            raise ValueError(problem)
    return rows


def embedding_args(view) -> tuple:
    return (view.embedding, table(view.embeddings), str(view.embedding_token), bool(view.allow_pickle_embeddings))


def embedding(value, names, token, allow_pickle, model: ModelSpec, rows: tuple | None) -> EmbeddingSpec | None:
    """The job's embedding, checked against the model and against `rows` (the job's search_replace
    rows; None when the prompts are bad, which is reported on its own)."""
    if not token.strip():
        raise ValueError(f"embedding_token={token!r} must not be empty; valid: a word such as <embedding>")
    spec = resolve_embedding(value, dict(names), token, allow_pickle, model)
    if spec is not None and rows is not None:
        missing = [p for _, _, p, n in rows if token not in p and token not in n]
        if missing:
            raise ValueError(f"embedding={value!r}: its trigger token embedding_token={token!r} is in "
                             f"neither the prompt nor the negative prompt of {missing[:3]}; put the token where "
                             f"the embedding should act")
    return spec


def lora(value, names) -> LoraSpec | None:
    return resolve_lora(value, dict(names))


def lcm_lora(value, names) -> LoraSpec | None:
    return resolve_lora(value, dict(names), "lcm.lora")


def extra_loras(extra: tuple, names: tuple, swept: LoraSpec | None, swept_value) -> tuple | None:
    """The `extra_loras` of a job: ((LoraSpec, weight), ...), names from `loras`, or None. `swept` is the
    job's swept LoRA, which may not also be an extra."""
    if not extra:
        return None
    known = dict(names)
    out = []
    for name, weight in extra:
        if name not in known:
            listed = ", ".join(repr(n) for n in known) or "none defined"
            raise ValueError(f"extra_loras.{name}={weight}: {name!r} is not a name in loras ({listed}); "
                             f"add it with +loras.{name}=/path/to/file.safetensors")
        out.append((resolve_lora(name, known, f"extra_loras.{name}"), float(weight)))
    if swept is not None and any(spec == swept for spec, _ in out):
        raise ValueError(f"lora={swept_value!r} is also in extra_loras; a LoRA is either the swept one or an extra")
    return tuple(out)


def images(value) -> tuple:
    return tuple(init_images(value))
