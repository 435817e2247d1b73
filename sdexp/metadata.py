"""AUTOMATIC1111-style generation parameters, written into each PNG as a `parameters` text chunk."""
from __future__ import annotations


def _num(value: float) -> str:
    return f"{value:g}"


def a1111_parameters(*, prompt: str, negative_prompt: str, steps: int, sampler: str, cfg: float, seed: int,
                     width: int, height: int, model: str, model_hash: str, vae: str, vae_hash: str,
                     clip_skip: int, loras: list[tuple] = (), embedding: tuple | None = None,
                     strength: float | None = None) -> str:
    """The text AUTOMATIC1111 writes (and its PNG Info tab and model sites read back).

    loras: (name, weight, addnet hash) each, written as A1111 does: `<lora:name:weight>` in the prompt and
    "Lora hashes". embedding: (name, trigger token, sha256); A1111 calls an embedding by its name, so
    the trigger token is written as that name, and its hash goes to "TI hashes". strength: img2img's
    "Denoising strength".
    """
    if embedding:
        name, token, _ = embedding
        prompt, negative_prompt = prompt.replace(token, name), negative_prompt.replace(token, name)
    for name, weight, _ in loras:
        prompt = f"{prompt} <lora:{name}:{_num(weight)}>"
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    fields = [
        ("Steps", steps), ("Sampler", sampler), ("CFG scale", _num(cfg)), ("Seed", seed),
        ("Size", f"{width}x{height}"), ("Model hash", model_hash[:10]), ("Model", model),
        ("VAE hash", vae_hash[:10]), ("VAE", vae),
        ("Denoising strength", _num(strength) if strength is not None else ""), ("Clip skip", clip_skip),
        ("Lora hashes", '"' + ", ".join(f"{n}: {h[:12]}" for n, _, h in loras) + '"' if loras else ""),
        ("TI hashes", f'"{embedding[0]}: {embedding[2][:12]}"' if embedding else ""),
    ]
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v != ""))
    return "\n".join(lines)


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """Read the parameters text back into a dict (prompt, negative prompt, and each field)."""
    lines = text.split("\n")
    out = {"prompt": lines[0]}
    rest = lines[1:]
    if rest and rest[0].startswith("Negative prompt: "):
        out["negative_prompt"] = rest[0][len("Negative prompt: "):]
        rest = rest[1:]
    for part in ", ".join(rest).split(", "):
        if ": " in part:
            k, v = part.split(": ", 1)
            out[k] = v
    return out
