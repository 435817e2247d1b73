"""CLIP score backends: transformers CLIP and open_clip, one formula: max(100 * cos(image, text), 0).

- transformers: sdexp.clipscore.ClipScorer (torchmetrics' CLIPScore values, tests/test_clipscore.py).
  `clip.source`: 'tiny', a local folder saved by transformers, or a hub id
  (openai/clip-vit-large-patch14, torchmetrics' default).
- open_clip: any architecture and pretrained tag. `clip.source`: an architecture name
  (ViT-H-14, with `clip.pretrained=laion2b_s32b_b79k` or `clip.pretrained=/path/weights.safetensors`),
  'hf-hub:org/repo', a local folder in the hub layout (open_clip_config.json + open_clip_model.safetensors),
  or 'tiny' (a seeded random model built from code, for tests and demos).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BACKENDS = ("transformers", "open_clip")
TINY_OPEN_CLIP_VERSION = "v1"


def _numpy_rgb(image) -> np.ndarray:
    return np.array(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)


class TransformersClipScorer:
    """transformers CLIP through sdexp.clipscore.ClipScorer (the scorer sweeps use while rendering)."""

    implementation = "sdexp.clipscore.ClipScorer"

    def __init__(self, source: str, device):
        import transformers

        from ..clipscore import ClipScorer

        self.source = source
        self.scorer = ClipScorer(source, device)
        self.model_id = clip_model_id({"backend": "transformers", "source": source})
        self.version = f"transformers {transformers.__version__}"

    def score(self, images, prompts) -> list[float]:
        return self.scorer.score([_numpy_rgb(im) for im in images], list(prompts))


def open_clip_name(source: str) -> str:
    """The model name open_clip is given: local folders become 'local-dir:...'."""
    if source == "tiny":
        return f"local-dir:{tiny_open_clip_folder()}"
    if source.startswith(("hf-hub:", "local-dir:")):
        return source
    path = Path(source).expanduser()
    if path.is_dir():
        return f"local-dir:{path.resolve()}"
    return source


def _self_contained(source: str) -> bool:
    """A source that holds its own weights (pretrained= is ignored)."""
    return source == "tiny" or source.startswith(("hf-hub:", "local-dir:")) or Path(source).expanduser().is_dir()


def _normal_source(source: str) -> str:
    path = Path(source).expanduser()
    return str(path.resolve()) if source != "tiny" and path.is_dir() else source


def clip_model_id(options: dict) -> str:
    """The scorer's identity in the image_metrics table, e.g. 'transformers:openai/clip-vit-large-patch14'
    or 'open_clip:ViT-H-14/laion2b_s32b_b79k', known without loading the model."""
    backend = options.get("backend", "transformers")
    source = _normal_source(str(options.get("source") or "tiny"))
    pretrained = options.get("pretrained")
    if backend == "open_clip" and pretrained and not _self_contained(source):
        return f"open_clip:{source}/{pretrained}"
    return f"{backend}:{source}"


class OpenClipScorer:
    """open_clip CLIP: preprocess with the model's own transform, tokenize with its own tokenizer."""

    implementation = "sdexp.metrics.clip_backends.OpenClipScorer"

    def __init__(self, source: str, pretrained: str | None, device):
        import open_clip
        import torch

        name = open_clip_name(source)
        if name.startswith(("hf-hub:", "local-dir:")):
            pretrained = None                     # the folder or hub repo holds the weights
        self.device = torch.device(device)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=self.device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.model_id = clip_model_id({"backend": "open_clip", "source": source, "pretrained": pretrained})
        self.version = f"open_clip {open_clip.__version__}"

    def score(self, images, prompts) -> list[float]:
        import torch

        if len(images) != len(prompts):
            raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
        pixels = torch.stack([self.preprocess(im.convert("RGB")) for im in images]).to(self.device)
        tokens = self.tokenizer(list(prompts)).to(self.device)
        with torch.no_grad():
            img = self.model.encode_image(pixels).float()
            txt = self.model.encode_text(tokens).float()
        img = img / img.norm(p=2, dim=-1, keepdim=True)
        txt = txt / txt.norm(p=2, dim=-1, keepdim=True)
        return (100 * (img * txt).sum(dim=-1)).clamp(min=0).cpu().tolist()


def make_clip_scorer(options: dict, device):
    """The clip_score scorer from the `clip.*` options: backend, source, pretrained."""
    backend = options.get("backend", "transformers")
    source = options.get("source") or "tiny"
    if backend == "transformers":
        return TransformersClipScorer(source, device)
    if backend == "open_clip":
        return OpenClipScorer(source, options.get("pretrained"), device)
    raise ValueError(f"clip.backend={backend!r} is not a known backend; valid: {', '.join(BACKENDS)}")


# --- a tiny open_clip model built from code (seeded), for tests and demos --------------------------

TINY_OPEN_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                       "interpolation": "bicubic", "resize_mode": "shortest"},
}


def make_tiny_open_clip():
    """A seeded random open_clip CLIP (32x32 ViT, 2-layer text tower, the real CLIP tokenizer)."""
    import torch
    from open_clip.model import CLIP

    torch.manual_seed(5)
    return CLIP(**TINY_OPEN_CLIP_CONFIG["model_cfg"]).eval()


def tiny_open_clip_folder() -> Path:
    """Build the tiny open_clip model once (atomically) in sdexp's cache, in the hub folder layout."""
    from safetensors.torch import save_file

    from ..tiny import build_once, cache_root

    def build(folder: Path) -> None:
        model = make_tiny_open_clip()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
        (folder / "open_clip_config.json").write_text(json.dumps(TINY_OPEN_CLIP_CONFIG, indent=2))

    return build_once(cache_root() / f"tiny-openclip-{TINY_OPEN_CLIP_VERSION}", build)
