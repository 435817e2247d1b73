"""The shapes model: a small text-to-image model that sdexp trains on its own synthetic shapes, so that
demo images, grids, CLIP scores and FD/CMMD mean something, and tests can check that metrics rank
settings the right way.

dataset.py  the captioned shapes set (deterministic, train and held-out splits)
judge.py    a rule-based judge of colour, shape and background, independent of every trained model
arch.py     the architectures (SD1 layout: AutoencoderKL, CLIP text and image towers, UNet2DConditionModel)
train.py    the training script (`python scripts/train_shapes.py`); weights/TRAINING.json records its run

The weights ship with the package: weights/model is a diffusers StableDiffusionPipeline folder
(`model=shapes`), weights/clip a transformers CLIPModel folder (`scorer=shapes`).
"""
from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _folder(name: str) -> Path:
    folder = WEIGHTS_DIR / name
    if not (folder / ("model_index.json" if name == "model" else "config.json")).is_file():
        raise FileNotFoundError(f"the shapes {name} is not in {folder}; rebuild it with "
                                f"`python scripts/train_shapes.py` (see {WEIGHTS_DIR / 'TRAINING.json'})")
    return folder


def model_folder() -> Path:
    """The shapes model, a diffusers StableDiffusionPipeline folder."""
    return _folder("model")


def clip_folder() -> Path:
    """The shapes CLIP (text and image towers), a transformers CLIPModel folder with its processor."""
    return _folder("clip")
