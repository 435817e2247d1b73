"""AUTOMATIC1111-style generation parameters, written into each PNG as a `parameters` text chunk.

The fields come from the axis registry (each axis's `infotext` key), in the order A1111 writes
them (INFOTEXT_ORDER); hashes are facts of the render, not axes.
"""
from __future__ import annotations

import re

from .axes import BY_NAME, REGISTRY

# A1111's field order (modules/processing.py create_infotext); axis keys and render facts.
INFOTEXT_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "VAE hash", "VAE",
    "Variation seed", "Variation seed strength", "Denoising strength", "Clip skip", "RNG", "Eta DDIM",
    "Sigma churn", "Sigma tmin", "Sigma tmax", "Sigma noise", "Hires upscale", "Hires steps", "Hires upscaler",
    "Refiner", "Refiner switch at",
    "Lora hashes", "TI hashes",
)
NEGATIVE = "Negative prompt:"


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def infotext_value(cell, name: str) -> str:
    """An axis's infotext value ("" leaves it out): files by name, numbers as A1111 prints them; an
    optional axis that is off is left out, except the RNG source, whose absence would read as GPU."""
    axis = BY_NAME[name]
    value = cell.axis(name)
    if name == "rng":
        return "CPU" if value == "cpu" else ""    # A1111 writes RNG only when it is not its default, GPU
    if name == "hires_steps" and value == 0:
        return ""                                 # A1111 writes Hires steps only when they differ from Steps
    if value is None or (axis.optional and value == axis.off):
        return ""
    return _num(value)


def infotext_fields(cell) -> dict[str, str]:
    """{infotext key: value} of every axis; a key two axes share (Denoising strength: img2img's and the
    hires fix's, never both on) takes the value of the one that is on."""
    fields: dict[str, str] = {}
    for a in REGISTRY:
        if a.infotext:
            fields[a.infotext] = fields.get(a.infotext) or infotext_value(cell, a.name)
    return fields


def a1111_parameters(cell, *, model_hash: str, vae_hash: str, loras: list[tuple] = (),
                     embedding: tuple | None = None, refiner_hash: str | None = None) -> str:
    """The text AUTOMATIC1111 writes (and its PNG Info tab and model sites read back).

    loras: (name, weight, addnet hash) each, written as A1111 does: `<lora:name:weight>` in the prompt and
    "Lora hashes". embedding: (name, trigger token, sha256); A1111 calls an embedding by its name, so
    the trigger token is written as that name, and its hash goes to "TI hashes".
    """
    prompt, negative_prompt = cell.prompt, cell.negative_prompt
    if embedding:
        name, token, _ = embedding
        prompt, negative_prompt = prompt.replace(token, name), negative_prompt.replace(token, name)
    for name, weight, _ in loras:
        prompt = f"{prompt} <lora:{name}:{_num(weight)}>"
    lines = [prompt]
    if negative_prompt:
        lines.append(f"{NEGATIVE} {negative_prompt}")
    fields = infotext_fields(cell)
    fields.update({
        "Model hash": model_hash[:10], "VAE hash": vae_hash[:10],
        "Lora hashes": '"' + ", ".join(f"{n}: {h[:12]}" for n, _, h in loras) + '"' if loras else "",
        "TI hashes": f'"{embedding[0]}: {embedding[2][:12]}"' if embedding else "",
    })
    if refiner_hash:                  # A1111 writes "Refiner: name [short hash]"
        fields["Refiner"] = f"{fields['Refiner']} [{refiner_hash[:10]}]"
    lines.append(", ".join(f"{k}: {fields[k]}" for k in INFOTEXT_ORDER if fields.get(k, "") != ""))
    return "\n".join(lines)


def prompt_problem(text: str, key: str) -> str | None:
    """Why a prompt cannot round-trip through A1111's infotext, or None: a line that starts with
    "Negative prompt:" would be read back as the start of the negative prompt."""
    for line in str(text).split("\n"):
        if line.strip().startswith(NEGATIVE):
            return (f"{key}={text!r} has a line starting with {NEGATIVE!r}, which A1111's PNG Info (and sdexp) "
                    f"would read back as the negative prompt; valid: put it in negative_prompt instead")
    return None


_FIELD = re.compile(r'\s*([\w ./+-]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """Read the parameters text back as A1111 does: prompt lines, then from a line starting with
    "Negative prompt:" the negative prompt's lines, and the last line's `key: value` fields."""
    lines = text.strip().split("\n")
    fields = lines.pop() if len(lines) > 1 or "Steps: " in lines[0] else ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.strip().startswith(NEGATIVE):
            in_negative, line = True, line.strip()[len(NEGATIVE):]
        (negative if in_negative else prompt).append(line.strip() if in_negative else line)
    out = {"prompt": "\n".join(prompt)}
    if in_negative:
        out["negative_prompt"] = "\n".join(negative).strip()
    for m in _FIELD.finditer(fields):
        out[m[1].strip()] = m[2].strip()
    return out
