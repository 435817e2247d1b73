"""The LoRA axis: files in the kohya/AUTOMATIC1111 layout or the diffusers layout, loaded with
diffusers' `load_lora_weights` as named adapters, so switching LoRA or weight never reloads the
base model (`set_adapters` changes the active adapter and its scale in place).

A1111 records a LoRA in the prompt as `<lora:name:weight>` and its hash as the "addnet" hash: the
sha256 of a .safetensors file's tensor data, skipping the JSON header
(`hashing.safetensors_data_sha256`). sdexp records the same.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

from .named_files import resolve_named_file

LORA_SUFFIXES = (".safetensors",)
# key fragments of the layouts diffusers reads: kohya/A1111, diffusers (peft and older)
_LORA_KEY_MARKS = ("lora_down", "lora_up", "lora_A", "lora_B", "lora.down", "lora.up", "lora_linear_layer")


@dataclass(frozen=True)
class LoraSpec:
    name: str                  # label in grids, rows and the `<lora:name:weight>` of image metadata
    source: str                # absolute path of the .safetensors file


def resolve_lora(value, table, key: str = "lora") -> LoraSpec | None:
    found = resolve_named_file(key, value, table, LORA_SUFFIXES, "loras")
    if found is None:
        return None
    spec = LoraSpec(found[0], str(found[1]))
    check_lora_file(spec, key)
    return spec


def check_lora_file(spec: LoraSpec, key: str = "lora") -> None:
    """Read the file's header (no tensors): a readable safetensors file holding LoRA weights."""
    from safetensors import safe_open

    try:
        with safe_open(spec.source, framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:  # noqa: BLE001  (safetensors raises its own error types)
        raise ValueError(f"{key}={spec.name!r}: {spec.source} is not a readable .safetensors file ({e})") from None
    if not any(mark in k for k in keys for mark in _LORA_KEY_MARKS):
        raise ValueError(f"{key}={spec.name!r}: {spec.source} holds no LoRA weights (no key contains "
                         f"{', '.join(_LORA_KEY_MARKS)}); found keys such as {keys[:3]}")


def adapter_name(spec: LoraSpec) -> str:
    return "sdexp_" + hashlib.sha256(spec.source.encode()).hexdigest()[:12]


def activate_lora(model, stack: tuple[tuple[LoraSpec, float], ...]) -> None:
    """Make the (LoRA, weight) pairs of `stack` the active LoRAs of the loaded model (empty: none).

    Each file is loaded once per loaded model; later switches only change adapters and scales.
    """
    pipe = model.pipe
    loaded: dict = model.adapters.setdefault("lora", {})
    if not stack:
        if loaded:
            pipe.disable_lora()
        return
    for spec, _ in stack:
        name = adapter_name(spec)
        if name in loaded:
            continue
        from safetensors.torch import load_file

        try:
            with warnings.catch_warnings():   # peft warns when a model gets a second adapter: intended here
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                pipe.load_lora_weights(load_file(spec.source), adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"lora={spec.name!r}: diffusers cannot apply {spec.source} to model "
                             f"{model.spec.name!r}: {e}") from None
        loaded[name] = {"text_encoder": any(name in getattr(te, "peft_config", {}) for te in _text_encoders(model))}
    pipe.enable_lora()
    pipe.set_adapters([adapter_name(s) for s, _ in stack], adapter_weights=[float(w) for _, w in stack])


def _text_encoders(model) -> list:
    return [te for te in (model.text_encoder, getattr(model, "text_encoder_2", None)) if te is not None]


def lora_touches_text_encoder(model, stack: tuple[tuple[LoraSpec, float], ...]) -> bool:
    loaded = model.adapters.get("lora", {})
    return any(loaded.get(adapter_name(spec), {}).get("text_encoder", False) for spec, _ in stack)
