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


TEXT_CACHE = 4096      # prompts whose text features a scorer keeps
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
        self._texts: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def score(self, images: list[np.ndarray], prompts: list[str]) -> list[float]:
        """Scores of HxWx3 uint8 images against their prompts, one value per pair."""
        return self.score_pixels([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in images],
                                 prompts)

    @torch.no_grad()
    def score_pixels(self, pixels: list[torch.Tensor], prompts: list[str]) -> list[float]:
        """Scores of uint8 (3, H, W) tensors against their prompts: resized, cropped and normalized by
        the CLIP processor where the tensors are (the render device, in a sweep), no PIL and no copy
        to the host but the scores."""
        if len(pixels) != len(prompts):
            raise ValueError(f"got {len(pixels)} images but {len(prompts)} prompts")
        values = self.processor.image_processor(images=list(pixels), return_tensors="pt",
                                                input_data_format="channels_first",
                                                device=pixels[0].device if pixels else None)["pixel_values"]
        img = _features(self.model.get_image_features(pixel_values=values.to(self.device)))
        img = img / img.norm(p=2, dim=-1, keepdim=True)
        txt = self._text_features(list(prompts))
        return (100 * (img * txt).sum(dim=-1)).clamp(min=0).float().cpu().tolist()

    def _text_features(self, prompts: list[str]) -> torch.Tensor:
        """Normalized text features of prompts, each encoded once per scorer (a sweep repeats its prompts)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._texts]
        if missing:
            if len(self._texts) + len(missing) > TEXT_CACHE:
                self._texts.clear()
            text = self.processor(text=missing, return_tensors="pt", padding=True, truncation=True,
                                  max_length=self.max_tokens)
            txt = _features(self.model.get_text_features(input_ids=text["input_ids"].to(self.device),
                                                         attention_mask=text["attention_mask"].to(self.device)))
            for p, t in zip(missing, txt / txt.norm(p=2, dim=-1, keepdim=True)):
                self._texts[p] = t
        return torch.stack([self._texts[p] for p in prompts])
