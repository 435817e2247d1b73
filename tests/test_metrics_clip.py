"""The two CLIP score backends on tiny models built from code: transformers (values of torchmetrics'
CLIPScore) and open_clip (loaded from a local folder in the hub layout, computed by hand here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdexp import tiny
from sdexp.metrics.clip_backends import (OpenClipScorer, TransformersClipScorer, clip_model_id, make_clip_scorer,
                                         tiny_open_clip_folder)
from sdexp.metrics.registry import METRICS

PROMPTS = ["a photo of a cat", "an astronaut riding a horse", "red", ", ".join(["a fox in the snow"] * 20)]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    sizes = [(64, 64), (96, 80), (80, 96), (64, 64)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def test_open_clip_backend_matches_a_hand_computation(images):
    """open_clip's own preprocess and tokenizer, then max(100 * cos, 0) computed here in numpy."""
    import open_clip

    folder = tiny_open_clip_folder()
    assert (folder / "open_clip_config.json").is_file() and (folder / "open_clip_model.safetensors").is_file()
    scorer = make_clip_scorer({"backend": "open_clip", "source": str(folder)}, "cpu")
    assert isinstance(scorer, OpenClipScorer) and scorer.model_id == f"open_clip:{folder.resolve()}"
    scores = scorer.score(images, PROMPTS)

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    expected = []
    with torch.no_grad():
        for image, prompt in zip(images, PROMPTS):
            a = model.encode_image(preprocess(image).unsqueeze(0))[0].double().numpy()
            b = model.encode_text(tokenizer([prompt]))[0].double().numpy()
            expected.append(max(100 * float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)), 0.0))
    assert scores == pytest.approx(expected, abs=1e-4)
    assert len({round(s, 3) for s in scores}) == len(scores) and max(scores) > 1   # not degenerate


def test_open_clip_tiny_is_built_from_code_and_loads_by_name(images):
    """`clip.source=tiny` is the same seeded model: same weights, same scores."""
    from sdexp.metrics.clip_backends import make_tiny_open_clip

    a = make_clip_scorer({"backend": "open_clip", "source": "tiny"}, "cpu")
    assert a.model_id == "open_clip:tiny"
    fresh = make_tiny_open_clip().state_dict()
    loaded = a.model.state_dict()
    assert fresh.keys() == loaded.keys() and all(torch.equal(fresh[k], loaded[k]) for k in fresh)
    b = make_clip_scorer({"backend": "open_clip", "source": str(tiny_open_clip_folder())}, "cpu")
    assert a.score(images, PROMPTS) == b.score(images, PROMPTS)


def test_open_clip_model_ids():
    assert clip_model_id({"backend": "open_clip", "source": "ViT-H-14", "pretrained": "laion2b_s32b_b79k"}) \
        == "open_clip:ViT-H-14/laion2b_s32b_b79k"
    assert clip_model_id({"backend": "open_clip", "source": "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                          "pretrained": "ignored"}) == "open_clip:hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert clip_model_id({"backend": "transformers", "source": "openai/clip-vit-large-patch14"}) \
        == "transformers:openai/clip-vit-large-patch14"


def test_transformers_backend_is_torchmetrics_clip_score(images):
    """The transformers backend gives torchmetrics' CLIPScore values (see also tests/test_clipscore.py)."""
    from torchmetrics.functional.multimodal import clip_score
    from transformers import CLIPModel, CLIPProcessor

    scorer = make_clip_scorer({"backend": "transformers", "source": "tiny"}, "cpu")
    assert isinstance(scorer, TransformersClipScorer) and scorer.model_id == "transformers:tiny"
    ours = scorer.score(images[:3], PROMPTS[:3])

    model = CLIPModel.from_pretrained(tiny.tiny_clip_folder()).eval()
    processor = CLIPProcessor.from_pretrained(tiny.tiny_clip_folder())

    class Pooled(torch.nn.Module):      # torchmetrics 1.9 + transformers 5 (torchmetrics issue 3407)
        def __init__(self):
            super().__init__()
            self.model, self.config = model, model.config

        def get_image_features(self, *a, **k):
            return self.model.get_image_features(*a, **k).pooler_output

        def get_text_features(self, *a, **k):
            return self.model.get_text_features(*a, **k).pooler_output

    wrapped = Pooled()
    for image, prompt, score in zip(images, PROMPTS, ours):
        chw = torch.from_numpy(np.array(image)).permute(2, 0, 1)
        with torch.no_grad():
            expected = float(clip_score(chw, prompt, model_name_or_path=lambda: (wrapped, processor)))
        assert abs(score - expected) <= 1e-4


def test_registry_declares_direction_and_unit():
    assert METRICS["clip_score"].higher_is_better and METRICS["clip_score"].per == "image"
    assert METRICS["clip_score"].scorer is not None
    assert METRICS["fid"].lower_is_better and METRICS["fid"].per == "group"
    assert METRICS["kid"].lower_is_better and METRICS["kid"].per == "group"
    with pytest.raises(ValueError, match="unknown backend|not a known backend"):
        make_clip_scorer({"backend": "onnx"}, "cpu")
