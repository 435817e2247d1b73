"""CLIP score per image, with torchmetrics' formula: max(100 * cos(image_emb, text_emb), 0).

Computed in sdexp's own code (torchmetrics 1.9 + transformers 5 cannot run its CLIPScore, see
torchmetrics issue 3407); tests/test_clipscore.py proves parity with torchmetrics' implementation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import tiny


def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output is the projected embedding."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


BUILTIN_CLIPS = ("tiny", "shapes")     # tiny: random, built from code; shapes: trained (sdexp.shapes)


def clip_folder(source: str) -> Path:
    """The folder of a built-in scorer, else the source as a path (a hub id is not a folder)."""
    if source == "tiny":
        return tiny.tiny_clip_folder()
    if source == "shapes":
        from . import shapes

        return shapes.clip_folder()
    return Path(source).expanduser()


class ClipScorer:
    def __init__(self, source: str = "tiny", device: str | torch.device = "cpu"):
        from transformers import CLIPModel, CLIPProcessor

        folder = clip_folder(source)
        where = str(folder) if folder.is_dir() else source
        self.source = source
        self.device = torch.device(device)
        self.model = CLIPModel.from_pretrained(where, use_safetensors=True).to(self.device).eval()
        self.processor = CLIPProcessor.from_pretrained(where)
        self.max_tokens = self.model.config.text_config.max_position_embeddings

    @torch.no_grad()
    def score(self, images: list[np.ndarray], prompts: list[str]) -> list[float]:
        """Scores of HxWx3 uint8 images against their prompts, one value per pair."""
        if len(images) != len(prompts):
            raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)
        text = self.processor(text=list(prompts), return_tensors="pt", padding=True, truncation=True,
                              max_length=self.max_tokens)
        img = _features(self.model.get_image_features(pixel_values=pixels))
        txt = _features(self.model.get_text_features(input_ids=text["input_ids"].to(self.device),
                                                     attention_mask=text["attention_mask"].to(self.device)))
        img = img / img.norm(p=2, dim=-1, keepdim=True)
        txt = txt / txt.norm(p=2, dim=-1, keepdim=True)
        return (100 * (img * txt).sum(dim=-1)).clamp(min=0).float().cpu().tolist()
