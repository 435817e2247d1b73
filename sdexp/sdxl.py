"""Stable Diffusion XL conditioning in sdexp's own code: two text encoders and the added conditions.

Clip skip. sdexp counts clip skip the AUTOMATIC1111 way on every model: N=1 is the model's
default and each step up uses one layer earlier. SDXL was trained on the penultimate hidden
state of BOTH text encoders (CLIP ViT-L and OpenCLIP bigG), without their final layer norm, so
for SDXL:

* clip_skip=N takes `hidden_states[-(N+1)]` of both encoders (N=1: the penultimate layer);
* that equals diffusers' `StableDiffusionXLPipeline.encode_prompt(clip_skip=N-1)` (None for N=1)
  for the prompt (diffusers always uses the penultimate layer for its negative prompt; sdexp
  applies the same N to both);
* the pooled embedding is always text_encoder_2's projected `text_embeds`, whatever N is;
* valid N: 1..min(layers of the two encoders) - 1 (N = layers would be the token embeddings).

AUTOMATIC1111 differs: it ignores its "Clip skip" setting on SDXL unless its `sdxl_clip_l_skip`
option ("Clip skip SDXL") is on, and then takes `hidden_states[-N]` of the CLIP ViT-L encoder only
(bigG stays at the penultimate layer). A1111's SDXL default therefore equals sdexp's clip_skip=1
(as does A1111 "Clip skip 2" with that option on); sdexp's clip_skip > 1 has no A1111 equivalent.

Empty prompts. SDXL base sets `force_zeros_for_empty_prompt`: an empty negative prompt is all
zeros (embeddings and pooled), not the encoding of "". diffusers does this when no negative
prompt is given, AUTOMATIC1111 when the negative prompt is ""; `zero_empty=True` does it here.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def max_clip_skip(layers: Iterable[int]) -> int:
    """The largest valid clip skip for text encoders with these numbers of layers."""
    return min(int(n) for n in layers) - 1


@torch.no_grad()
def encode_prompts_sdxl(tokenizers: Sequence, text_encoders: Sequence, prompts: list[str], clip_skip: int,
                        zero_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeds (B, 77, sum of hidden sizes), pooled (B, projection_dim)) for the SDXL UNet.

    The last text encoder must be a CLIPTextModelWithProjection: its `text_embeds` are the pooled
    embedding. With `zero_empty`, rows of empty prompts are zeros (see the module docstring).
    """
    hi = max_clip_skip(te.config.num_hidden_layers for te in text_encoders)
    if not 1 <= clip_skip <= hi:
        raise ValueError(f"clip_skip={clip_skip} is out of range; valid: 1..{hi} for this SDXL model "
                         "(1 = penultimate layer of both text encoders, SDXL's default)")
    prompts = list(prompts)
    embeds, pooled = [], None
    for tokenizer, text_encoder in zip(tokenizers, text_encoders):
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        out = text_encoder(ids.to(text_encoder.device), output_hidden_states=True)
        embeds.append(out.hidden_states[-(clip_skip + 1)])
        pooled = getattr(out, "text_embeds", None)
    if pooled is None:
        raise ValueError("the last SDXL text encoder has no projection (expected CLIPTextModelWithProjection)")
    dtype = text_encoders[-1].dtype
    embeds, pooled = torch.cat(embeds, dim=-1).to(dtype), pooled.to(dtype)
    if zero_empty:
        keep = torch.tensor([p != "" for p in prompts], device=embeds.device, dtype=dtype)
        embeds, pooled = embeds * keep.view(-1, 1, 1), pooled * keep.view(-1, 1)
    return embeds, pooled


# The refiner's aesthetic-score conditioning: diffusers' StableDiffusionXLImg2ImgPipeline defaults (and
# A1111's "SDXL low/high aesthetic score" options) for the prompt and the negative prompt.
AESTHETIC_SCORE = 6.0
NEGATIVE_AESTHETIC_SCORE = 2.5


def add_time_ids(height: int, width: int, n: int, dtype: torch.dtype, device,
                 aesthetic: float | None = None) -> torch.Tensor:
    """SDXL's size conditioning as diffusers builds it: (original size, crop (0, 0), target size),
    original = target = (height, width); shape (n, 6). A refiner (`requires_aesthetics_score`) takes
    (original size, crop, aesthetic score) instead; shape (n, 5)."""
    tail = [height, width] if aesthetic is None else [aesthetic]
    ids = torch.tensor([[height, width, 0, 0, *tail]], dtype=dtype)
    return ids.to(device).repeat(n, 1)


def added_cond(pooled: torch.Tensor, height: int, width: int, aesthetic: float | None = None) -> dict:
    """The UNet's `added_cond_kwargs` for a batch of pooled embeddings."""
    return {"text_embeds": pooled,
            "time_ids": add_time_ids(height, width, pooled.shape[0], pooled.dtype, pooled.device, aesthetic)}
