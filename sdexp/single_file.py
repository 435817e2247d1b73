"""Single-file Stable Diffusion 1.x and XL checkpoints (CompVis / Stability / A1111 layout), offline.

Loading goes through diffusers' `from_single_file` with `config=` a local "skeleton" folder
holding only JSON configs and tokenizer files, so nothing is fetched from a hub. Loading never
executes code from a file: `.safetensors` always; pickles (`.ckpt`, `.pt`, `.pth`) only with
`allow_pickle=True`, then read with `torch.load(weights_only=True)` and converted to safetensors.

Exporting is the inverse of diffusers' single-file conversion: diffusers module names are mapped
to the original ones, deriving block counts from each model's config. SDXL's second text encoder
is written in the OpenCLIP layout (fused q/k/v, `resblocks`, a transposed `text_projection`).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import save_file

from sdexp import tiny

SKELETONS_DIR = Path(__file__).parent / "skeletons"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth")
VALID_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

# Renames of the parameter names inside one module, diffusers -> original.
_UNET_RESNET = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}
_OPEN_CLIP_TOP = {"embeddings.token_embedding.weight": "token_embedding.weight",
                  "embeddings.position_embedding.weight": "positional_embedding",
                  "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}


def detect_skeleton(path: str) -> str | None:
    """'sdxl' or 'sd15' for an original-layout .safetensors checkpoint, from its tensor names alone
    (SDXL files hold a second text encoder under conditioner.embedders.1); None if unknown."""
    if not str(path).lower().endswith(".safetensors") or not Path(path).expanduser().is_file():
        return None
    return _detect(str(Path(path).expanduser().resolve()))


@lru_cache(maxsize=None)
def _detect(path: str) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            keys = list(f.keys())
    except Exception:  # noqa: BLE001  (an unreadable file is reported when it loads)
        return None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith(UNET_PREFIX) for k in keys):
        return "sd15"
    return None


# --- skeleton config folders -------------------------------------------------------------------

def _shipped_skeletons() -> list[str]:
    return sorted(p.name for p in SKELETONS_DIR.iterdir() if p.is_dir())


def skeleton_folder(name_or_path: str) -> Path:
    """A diffusers config folder without weights: a shipped skeleton by name, or an existing folder."""
    if name_or_path in _shipped_skeletons():
        shipped = SKELETONS_DIR / name_or_path
        digest = hashlib.sha256()
        for f in sorted(p for p in shipped.rglob("*") if p.is_file()):
            digest.update(f.relative_to(shipped).as_posix().encode() + f.read_bytes())

        def build(folder: Path) -> None:
            shutil.copytree(shipped, folder, dirs_exist_ok=True)
            for sub in shipped.glob("tokenizer*"):   # SDXL has tokenizer and tokenizer_2
                tiny.write_clip_tokenizer_files(folder / sub.name)

        # keyed by the shipped files' content, so an edited skeleton is never served stale
        return tiny.build_once(tiny.cache_root() / "skeletons" / f"{name_or_path}-{digest.hexdigest()[:12]}", build)
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    raise ValueError(
        f"unknown skeleton {name_or_path!r}: valid choices are {_shipped_skeletons()} "
        "or the path of an existing diffusers config folder"
    )


# --- export: diffusers -> original layout ------------------------------------------------------

def _rename(state_dict: dict, modules: dict[str, tuple[str, dict]], what: str) -> dict:
    """Map each key `<diffusers module>.<param>` through `modules` (longest module prefix wins)."""
    out = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if module in modules:
                break
        else:
            raise ValueError(f"{what}: no original-layout name for parameter {key!r} (not an SD1 layout?)")
        target, renames = modules[module]
        rest = ".".join(parts[cut:])
        for old, new in renames.items():
            if rest.startswith(old + "."):
                rest = new + rest[len(old):]
                break
        out[f"{target}.{rest}" if target else rest] = tensor
    return out


def unet_to_original(state_dict: dict, config) -> dict:
    """UNet2DConditionModel (SD1 or SDXL block layout) state dict -> `model.diffusion_model` keys, unprefixed."""
    n, per = len(config["block_out_channels"]), config["layers_per_block"]
    m = {
        "conv_in": ("input_blocks.0.0", {}),
        "time_embedding.linear_1": ("time_embed.0", {}), "time_embedding.linear_2": ("time_embed.2", {}),
        "mid_block.resnets.0": ("middle_block.0", _UNET_RESNET),
        "mid_block.attentions.0": ("middle_block.1", {}),
        "mid_block.resnets.1": ("middle_block.2", _UNET_RESNET),
        "conv_norm_out": ("out.0", {}), "conv_out": ("out.2", {}),
        "add_embedding.linear_1": ("label_emb.0.0", {}), "add_embedding.linear_2": ("label_emb.0.2", {}),  # SDXL
    }
    for i in range(n):
        # Down level i: `per` (resnet, attention) pairs, then a downsampler except at the bottom.
        for j in range(per):
            k = 1 + i * (per + 1) + j
            m[f"down_blocks.{i}.resnets.{j}"] = (f"input_blocks.{k}.0", _UNET_RESNET)
            m[f"down_blocks.{i}.attentions.{j}"] = (f"input_blocks.{k}.1", {})
        m[f"down_blocks.{i}.downsamplers.0.conv"] = (f"input_blocks.{1 + i * (per + 1) + per}.0.op", {})
        # Up level i: `per + 1` pairs; the upsampler follows the attention when there is one.
        for j in range(per + 1):
            k = i * (per + 1) + j
            m[f"up_blocks.{i}.resnets.{j}"] = (f"output_blocks.{k}.0", _UNET_RESNET)
            m[f"up_blocks.{i}.attentions.{j}"] = (f"output_blocks.{k}.1", {})
        slot = 2 if "CrossAttn" in config["up_block_types"][i] else 1
        m[f"up_blocks.{i}.upsamplers.0.conv"] = (f"output_blocks.{i * (per + 1) + per}.{slot}.conv", {})
    return _rename(state_dict, m, "UNet")


def vae_to_original(state_dict: dict, config) -> dict:
    """AutoencoderKL state dict -> standalone original VAE keys (`encoder.down.0.block.0...`)."""
    n, per = len(config["block_out_channels"]), config["layers_per_block"]
    m = {name: (name, {}) for name in ("encoder.conv_in", "encoder.conv_out", "decoder.conv_in",
                                       "decoder.conv_out", "quant_conv", "post_quant_conv")}
    for part in ("encoder", "decoder"):
        m[f"{part}.conv_norm_out"] = (f"{part}.norm_out", {})
        m[f"{part}.mid_block.resnets.0"] = (f"{part}.mid.block_1", _VAE_RESNET)
        m[f"{part}.mid_block.resnets.1"] = (f"{part}.mid.block_2", _VAE_RESNET)
        m[f"{part}.mid_block.attentions.0"] = (f"{part}.mid.attn_1", _VAE_ATTENTION)
    for i in range(n):
        for j in range(per):
            m[f"encoder.down_blocks.{i}.resnets.{j}"] = (f"encoder.down.{i}.block.{j}", _VAE_RESNET)
        m[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = (f"encoder.down.{i}.downsample.conv", {})
        # The original decoder numbers its levels from the bottom, diffusers from the top.
        for j in range(per + 1):
            m[f"decoder.up_blocks.{i}.resnets.{j}"] = (f"decoder.up.{n - 1 - i}.block.{j}", _VAE_RESNET)
        m[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = (f"decoder.up.{n - 1 - i}.upsample.conv", {})
    out = _rename(state_dict, m, "VAE")
    # The original mid-block attention uses 1x1 convolutions where diffusers uses Linear layers.
    for key, tensor in out.items():
        if ".mid.attn_1." in key and key.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
            if tensor.ndim == 2:
                out[key] = tensor[:, :, None, None]
    return out


def clip_to_original(state_dict: dict) -> dict:
    """CLIPTextModel state dict -> keys under `transformer.text_model.` (transformers 5 drops `text_model.`)."""
    return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state_dict.items()}


def open_clip_to_original(state_dict: dict) -> dict:
    """CLIPTextModelWithProjection state dict -> OpenCLIP text keys (SDXL's `conditioner.embedders.1.model.`)."""
    out = {}
    for key, tensor in state_dict.items():
        name = key.removeprefix("text_model.")
        if name in _OPEN_CLIP_TOP:
            out[_OPEN_CLIP_TOP[name]] = tensor
        elif name == "text_projection.weight":
            out["text_projection"] = tensor.T.contiguous()   # OpenCLIP computes x @ text_projection
        elif name.startswith("encoder.layers."):
            layer, rest = name.removeprefix("encoder.layers.").split(".", 1)
            if rest.startswith(("self_attn.k_proj.", "self_attn.v_proj.")):
                continue                                      # fused into in_proj with q_proj below
            if rest.startswith("self_attn.q_proj."):
                tensor = torch.cat([state_dict[key.replace("q_proj", p)] for p in ("q_proj", "k_proj", "v_proj")])
                rest = "attn.in_proj_" + rest.rsplit(".", 1)[1]
            else:
                old = next((o for o in _OPEN_CLIP_LAYER if rest.startswith(o + ".")), None)
                if old is None:
                    raise ValueError(f"text_encoder_2: no OpenCLIP name for parameter {key!r}")
                rest = _OPEN_CLIP_LAYER[old] + rest[len(old):]
            out[f"transformer.resblocks.{layer}.{rest}"] = tensor
        else:
            raise ValueError(f"text_encoder_2: no OpenCLIP name for parameter {key!r}")
    return out


def _save(tensors: dict, path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def save_original_checkpoint(pipe, path) -> None:
    """Write a StableDiffusionPipeline's (or StableDiffusionXLPipeline's) UNet, VAE and text encoders
    to one original-layout .safetensors."""
    text_encoder_2 = getattr(pipe, "text_encoder_2", None)
    parts = [(UNET_PREFIX, unet_to_original(pipe.unet.state_dict(), pipe.unet.config)),
             (VAE_PREFIX, vae_to_original(pipe.vae.state_dict(), pipe.vae.config))]
    if text_encoder_2 is None:
        parts.append((CLIP_PREFIX, clip_to_original(pipe.text_encoder.state_dict())))
    else:
        parts.append((SDXL_CLIP_PREFIX, clip_to_original(pipe.text_encoder.state_dict())))
        parts.append((SDXL_OPEN_CLIP_PREFIX, open_clip_to_original(text_encoder_2.state_dict())))
    tensors = {}
    for prefix, part in parts:
        tensors.update({prefix + k: v for k, v in part.items()})
    _save(tensors, path)


def save_original_vae(vae, path) -> None:
    """Write an AutoencoderKL alone as a standalone original-layout VAE .safetensors."""
    _save(vae_to_original(vae.state_dict(), vae.config), path)


# --- loading -----------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pickle_to_safetensors(path: Path) -> Path:
    """Read a pickle checkpoint with weights_only=True and cache it as safetensors (keyed by sha256)."""
    dest = tiny.cache_root() / "converted" / f"{_sha256(path)}.safetensors"
    if dest.exists():
        return dest
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: holds objects other than tensors and plain data; refusing to load it") from e
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
    tensors, storages = {}, set()
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            # safetensors refuses tensors that share memory: copy all but the first of each storage.
            ptr = value.untyped_storage().data_ptr()
            tensors[key] = value.clone() if ptr in storages else value
            storages.add(ptr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".safetensors", dir=dest.parent)
    os.close(fd)
    try:
        _save(tensors, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _safetensors_file(path, allow_pickle: bool) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VALID_SUFFIXES:
        raise ValueError(f"unsupported checkpoint file {str(path)!r}: valid suffixes are {list(VALID_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if suffix == ".safetensors":
        return path
    if not allow_pickle:
        raise ValueError(
            f"{path} is a pickle checkpoint, which can run code when loaded; convert it to .safetensors "
            "or pass allow_pickle=True (it is then read with torch.load(weights_only=True))"
        )
    return _pickle_to_safetensors(path)


def skeleton_is_sdxl(folder) -> bool:
    """Whether a config folder describes a StableDiffusionXLPipeline (its model_index.json says so)."""
    try:
        index = json.loads((Path(folder) / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    from .models import SDXL_PIPELINES

    return index.get("_class_name") in SDXL_PIPELINES


def load_pipeline_file(path, skeleton: str = "sd15", allow_pickle: bool = False):
    """A StableDiffusionPipeline, or a StableDiffusionXLPipeline when the skeleton is SDXL's, from one
    original-layout checkpoint file, configured by `skeleton`."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    file = _safetensors_file(path, allow_pickle)
    folder = skeleton_folder(skeleton)
    if skeleton_is_sdxl(folder):
        return StableDiffusionXLPipeline.from_single_file(
            str(file), config=str(folder), local_files_only=True, add_watermarker=False)
    return StableDiffusionPipeline.from_single_file(
        str(file), config=str(folder), local_files_only=True,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def load_vae_file(path, skeleton: str = "sd15", allow_pickle: bool = False):
    """An AutoencoderKL from a standalone VAE file (or a full checkpoint); `skeleton` may be a pipeline
    config folder (its `vae/` is used) or a VAE config folder."""
    from diffusers import AutoencoderKL

    file = _safetensors_file(path, allow_pickle)
    folder = skeleton_folder(skeleton)
    if (folder / "vae" / "config.json").is_file():
        folder = folder / "vae"
    # `config` must be a str: diffusers rejects a Path here.
    return AutoencoderKL.from_single_file(str(file), config=str(folder), local_files_only=True)
