"""sdexp's CLIP score against torchmetrics' own implementation and a numpy formula, on the tiny CLIP scorer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.multimodal import clip_score
from torchmetrics.multimodal import CLIPScore

from sdexp import tiny
from sdexp.clipscore import ClipScorer

TOL = 1e-4
LONG = ", ".join(["a very detailed oil painting of a red fox in a snowy forest at dawn"] * 8)


def _cases():
    rng = np.random.default_rng(1234)
    noise = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    return [
        (noise(64, 64), "a photo of a cat"),
        (noise(96, 80), "an astronaut riding a horse on the moon, highly detailed"),
        (noise(80, 96), "red"),
        (np.zeros((64, 64, 3), np.uint8), ""),
        (np.full((80, 96, 3), 255, np.uint8), "a snowy field"),   # negative cosine: clamped to 0
        (np.repeat(np.repeat(noise(8, 8), 8, 0), 8, 1), "a mosaic of coloured squares"),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def scorer() -> ClipScorer:
    return ClipScorer("tiny")


@pytest.fixture(scope="module")
def reference():
    """The tiny scorer loaded independently of sdexp, straight from its folder."""
    from transformers import CLIPModel, CLIPProcessor

    folder = tiny.tiny_clip_folder()
    return CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)


class PooledFeatures(torch.nn.Module):
    """torchmetrics 1.9 expects get_image/text_features to return tensors; transformers 5 returns a model
    output whose pooler_output is the projected embedding (torchmetrics issue 3407). Nothing else changes."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *args, **kwargs):
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs):
        return self.model.get_text_features(*args, **kwargs).pooler_output


@pytest.fixture(scope="module")
def torchmetrics_model(reference):
    model, processor = reference
    wrapped = PooledFeatures(model)
    return lambda: (wrapped, processor)


def chw(image: np.ndarray) -> torch.Tensor:
    """torchmetrics takes (C, H, W) uint8 tensors."""
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def torchmetrics_score(torchmetrics_model, image, prompt) -> float:
    with torch.no_grad():
        return float(clip_score(chw(image), prompt, model_name_or_path=torchmetrics_model))


def test_matches_torchmetrics_per_image(scorer, torchmetrics_model):
    images, prompts = zip(*CASES)
    scores = scorer.score(list(images), list(prompts))          # one batch: padded prompts, mixed sizes
    assert len(scores) == len(CASES)
    for (image, prompt), score in zip(CASES, scores):
        expected = torchmetrics_score(torchmetrics_model, image, prompt)
        assert abs(score - expected) <= TOL, (image.shape, prompt, score, expected)
    assert sum(s > 1 for s in scores) >= len(CASES) - 1, scores        # not trivially all zero
    assert scores[4] == 0.0                                            # the clamped case


def test_matches_torchmetrics_metric_class(scorer, torchmetrics_model):
    image, prompt = CASES[1]
    metric = CLIPScore(model_name_or_path=torchmetrics_model)
    with torch.no_grad():
        metric.update(chw(image), prompt)
        expected = float(metric.compute())
    assert abs(scorer.score([image], [prompt])[0] - expected) <= TOL


def test_long_prompt_is_truncated_like_clip(scorer, reference, torchmetrics_model):
    """sdexp truncates a long caption to 77 tokens keeping end-of-text, as CLIP's tokenizer does.

    torchmetrics 1.9 instead tokenizes without truncation and slices input_ids to 77, which drops the
    end-of-text token; CLIP then pools the start-of-text position, whose feature ignores the caption
    (torchmetrics issue 2883). So torchmetrics is given the caption already cut to those 77 tokens.
    """
    _, processor = reference
    tok = processor.tokenizer
    assert len(tok(LONG).input_ids) > 77
    ids = tok(LONG, truncation=True, max_length=77).input_ids
    assert len(ids) == 77 and ids[-1] == tok.eos_token_id
    caption77 = tok.decode(ids[1:-1])
    assert tok(caption77).input_ids == ids                           # torchmetrics sees exactly these ids

    image = CASES[0][0]
    score = scorer.score([image], [LONG])[0]
    assert score > 1
    assert abs(score - torchmetrics_score(torchmetrics_model, image, caption77)) <= TOL
    # words past token 77 do not count; the first 77 tokens do
    assert scorer.score([image], [LONG + ", and a second fox"])[0] == score
    assert abs(scorer.score([image], ["a cubist portrait, " + LONG])[0] - score) > 1e-3


def test_is_clamped_cosine_of_projected_features(scorer, reference):
    """max(100 * cos, 0), with the projections applied by hand and the cosine taken in numpy."""
    model, processor = reference
    images, prompts = zip(*CASES)
    scores = scorer.score(list(images), list(prompts))
    raw = []
    with torch.no_grad():
        for image, prompt in CASES:
            pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
            text = processor(text=[prompt], return_tensors="pt")
            img = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)[0]
            txt = model.text_projection(model.text_model(**text).pooler_output)[0]
            a, b = img.double().numpy(), txt.double().numpy()
            raw.append(100 * float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert min(raw) < -1, raw                                            # the clamp is exercised
    for score, cos100 in zip(scores, raw):
        assert abs(score - max(cos100, 0.0)) <= TOL, (score, cos100)


def test_rejects_mismatched_lengths(scorer):
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        scorer.score([CASES[0][0], CASES[1][0]], ["a cat"])


def pil_path_scores(reference, images, prompts) -> list[float]:
    """The scores as sdexp computed them before scoring from tensors: each image a PIL image (as the
    PNG holds it) through the CLIP processor, the prompts encoded with them in one padded batch."""
    from PIL import Image

    model, processor = reference
    with torch.no_grad():
        pixels = processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
        text = processor(text=list(prompts), return_tensors="pt", padding=True, truncation=True, max_length=77)
        img = model.get_image_features(pixel_values=pixels).pooler_output
        txt = model.get_text_features(**text).pooler_output
        img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
        return (100 * (img * txt).sum(-1)).clamp(min=0).tolist()


def test_scores_from_tensors_match_the_pil_path(scorer, reference):
    """score_pixels (uint8 (3, H, W) tensors, as the engine's decode leaves them on the render device)
    agrees with the PIL path within TOL, with text features cached across calls in any order."""
    images, prompts = zip(*CASES)
    expected = pil_path_scores(reference, images, prompts)
    tensors = [torch.from_numpy(im).permute(2, 0, 1) for im in images]
    fresh = ClipScorer("tiny")
    first = fresh.score_pixels(tensors[3:], list(prompts[3:]))       # some prompts cached first
    scores = fresh.score_pixels(tensors, list(prompts))
    # the same images in a batch of another size: equal up to float summation order
    assert scores[3:] == pytest.approx(first, abs=TOL)
    for score, want in zip(scores, expected):
        assert abs(score - want) <= TOL, (score, want)
    assert sum(s > 1 for s in scores) >= len(CASES) - 1


def test_decode_gives_the_arrays_as_tensors():
    """The engine's decode hands the scorer the very pixels it stores: its tensors equal its arrays."""
    from diffusers import AutoencoderKL

    from sdexp.denoise import decode

    vae = AutoencoderKL.from_pretrained(tiny.tiny_vae_folder("tiny"))
    latents = torch.randn(3, vae.config.latent_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    pixels = []
    arrays = decode(vae, latents, pixels=pixels)
    with torch.no_grad():          # the formula of diffusers' image processor, in numpy
        raw = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    want = [(im * 255).round().astype("uint8")
            for im in (raw / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()]
    assert len(pixels) == 3
    for p, a, w in zip(pixels, arrays, want):
        assert p.dtype == torch.uint8 and p.shape == (3, *a.shape[:2])
        assert np.array_equal(p.permute(1, 2, 0).numpy(), a) and np.array_equal(a, w)
