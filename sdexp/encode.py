"""Prompt embeddings in sdexp's own code, with clip skip in the AUTOMATIC1111 convention.

A1111 "Clip skip N" takes `hidden_states[-N]` of the CLIP text encoder and applies the final
layer norm; N=1 is the last layer (the plain `last_hidden_state`). diffusers' `clip_skip=k`
is the same layer as A1111 `N = k + 1`.
"""
from __future__ import annotations

import torch


def text_encoder_layers(text_encoder) -> int:
    return int(text_encoder.config.num_hidden_layers)


def final_layer_norm(text_encoder):
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: list[str], clip_skip: int) -> torch.Tensor:
    """Embeddings of shape (len(prompts), 77, hidden) for the SD1 UNet's cross-attention."""
    layers = text_encoder_layers(text_encoder)
    if not 1 <= clip_skip <= layers:
        raise ValueError(f"clip_skip={clip_skip} is out of range; valid: 1..{layers} for this text encoder")
    tokens = tokenizer(
        list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
        truncation=True, return_tensors="pt",
    )
    device = text_encoder.device
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = tokens.attention_mask.to(device)
    out = text_encoder(tokens.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
    if clip_skip == 1:
        emb = out.last_hidden_state
    else:
        emb = final_layer_norm(text_encoder)(out.hidden_states[-clip_skip])
    return emb.to(dtype=text_encoder.dtype)
