"""Tiny LoRA and textual-inversion files built from code, in the layouts people download.

- kohya/A1111 LoRA: `lora_unet_<module>` / `lora_te_<module>` keys with lora_down, lora_up and alpha
  (module paths of the diffusers UNet and CLIP text model, dots as underscores, as kohya's
  sd-scripts writes them for SD1.x).
- diffusers LoRA: what `StableDiffusionPipeline.save_lora_weights` writes from peft adapters.
- embeddings: A1111 `.pt` (string_to_param), A1111 `.safetensors` (emb_params) and diffusers'
  learned_embeds (one key, the token).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")


def _linear_modules(module, ends):
    return [(n, m) for n, m in module.named_modules()
            if isinstance(m, torch.nn.Linear) and any(n.endswith(e) for e in ends)]


def kohya_lora(unet, text_encoder=None, *, rank: int = 4, alpha: float = 4.0, seed: int = 0,
               scale: float = 0.5) -> dict[str, torch.Tensor]:
    """A kohya-layout LoRA state dict for the attention layers (and the text encoder's, if given)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    targets = [("lora_unet_", n, m) for n, m in _linear_modules(unet, ATTENTION)]
    if text_encoder is not None:
        targets += [("lora_te_text_model_", n, m) for n, m in _linear_modules(text_encoder, TEXT_ATTENTION)]
    for prefix, name, mod in targets:
        key = prefix + name.replace(".", "_")
        out[f"{key}.lora_down.weight"] = torch.randn(rank, mod.in_features, generator=g) * scale
        out[f"{key}.lora_up.weight"] = torch.randn(mod.out_features, rank, generator=g) * scale
        out[f"{key}.alpha"] = torch.tensor(alpha)
    return out


def write_kohya_lora(path: Path, pipe, *, text_encoder: bool = True, seed: int = 0, scale: float = 0.5) -> Path:
    te = getattr(pipe.text_encoder, "text_model", pipe.text_encoder) if text_encoder else None
    save_file(kohya_lora(pipe.unet, te, seed=seed, scale=scale), str(path))
    return Path(path)


def write_diffusers_lora(folder: Path, pipe, *, seed: int = 1, rank: int = 4) -> Path:
    """Add a random peft adapter to a copy of the UNet and save it as diffusers does."""
    import copy

    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = copy.deepcopy(pipe.unet)
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(ATTENTION), init_lora_weights="gaussian"))
    with torch.no_grad():   # gaussian init leaves B at zero: give it values so the LoRA acts
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    folder = Path(folder)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def embedding_vectors(text_encoder, n: int = 2, seed: int = 0) -> torch.Tensor:
    width = text_encoder.get_input_embeddings().weight.shape[1]
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 2


def write_a1111_pt(path: Path, vectors: torch.Tensor, name: str = "emb") -> Path:
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": name, "step": 100,
                "sd_checkpoint": "0000000000", "sd_checkpoint_name": "tiny"}, str(path))
    return Path(path)


def write_a1111_safetensors(path: Path, vectors: torch.Tensor) -> Path:
    save_file({"emb_params": vectors.contiguous()}, str(path))
    return Path(path)


def write_diffusers_embedding(path: Path, vectors: torch.Tensor, token: str = "<cat-toy>") -> Path:
    save_file({token: vectors[0].contiguous()}, str(path))
    return Path(path)
