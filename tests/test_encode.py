"""Prompt embeddings with AUTOMATIC1111 clip skip, on the tiny (real, 12-layer) CLIP text encoder.

References are computed here, independently of sdexp.encode: the A1111 formula
(`hidden_states[-N]` through the encoder's `final_layer_norm`; N=1 is `last_hidden_state`) and
diffusers' `StableDiffusionPipeline.encode_prompt(..., clip_skip=N-1)`.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from sdexp import tiny
from sdexp.encode import encode_prompts

LAYERS = 12
LONG = ", ".join(["a very detailed oil painting of a red fox in a snowy forest at dawn"] * 8)
PROMPTS = ["a photo of a cat", "", LONG]


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(
        tiny.tiny_model_folder(), local_files_only=True, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="module")
def input_ids(pipe) -> torch.Tensor:
    """Token ids as Stable Diffusion feeds its text encoder: padded and truncated to 77."""
    return pipe.tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


@pytest.fixture(scope="module")
def encoder_out(pipe, input_ids):
    with torch.no_grad():
        return pipe.text_encoder(input_ids, output_hidden_states=True)


def final_norm(text_encoder):
    # transformers 5's CLIPTextModel holds the norm directly; 4.x had it under .text_model
    return text_encoder.final_layer_norm if hasattr(text_encoder, "final_layer_norm") else \
        text_encoder.text_model.final_layer_norm


def a1111(pipe, encoder_out, n: int) -> torch.Tensor:
    """A1111 "Clip skip N": hidden_states[-N], then the final layer norm."""
    with torch.no_grad():
        return final_norm(pipe.text_encoder)(encoder_out.hidden_states[-n])


def test_tiny_encoder_is_sd1_like(pipe, input_ids, encoder_out):
    assert pipe.text_encoder.config.num_hidden_layers == LAYERS
    assert len(encoder_out.hidden_states) == LAYERS + 1          # embeddings + one per layer
    # the real SD tokenizer's ids (PLATFORM.md)
    assert input_ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    # the long prompt is cut to 77 tokens and still ends with end-of-text
    assert len(pipe.tokenizer(LONG).input_ids) > 77
    assert input_ids.shape == (3, 77) and input_ids[2, -1].item() == 49407


@pytest.mark.parametrize("n", range(1, LAYERS + 1))
def test_matches_a1111_formula(pipe, encoder_out, n):
    got = encode_prompts(pipe.tokenizer, pipe.text_encoder, PROMPTS, n)
    assert got.shape == (3, 77, 32) and got.dtype == torch.float32
    # same ops on the same inputs: bit-identical is expected
    torch.testing.assert_close(got, a1111(pipe, encoder_out, n), rtol=0, atol=0)
    if n == 1:
        torch.testing.assert_close(got, encoder_out.last_hidden_state, rtol=0, atol=0)


@pytest.mark.parametrize("n", range(1, LAYERS + 1))
def test_matches_diffusers_clip_skip(pipe, encoder_out, n):
    """diffusers' clip_skip=k is A1111's N=k+1 (k=None is N=1)."""
    k = n - 1
    if k == 0:
        expected, _ = pipe.encode_prompt(PROMPTS, "cpu", 1, False)          # diffusers' default path
    else:
        try:
            expected, _ = pipe.encode_prompt(PROMPTS, "cpu", 1, False, clip_skip=k)
        except AttributeError as e:
            # diffusers 0.42.1 + transformers >= 5.6: encode_prompt reads text_encoder.text_model, which
            # CLIPTextModel no longer has (diffusers issue 14124). Compute diffusers' own formula by hand:
            # prompt_embeds = final_layer_norm(hidden_states[-(clip_skip + 1)]).
            assert "text_model" in str(e), e
            with torch.no_grad():
                expected = final_norm(pipe.text_encoder)(encoder_out.hidden_states[-(k + 1)])
    got = encode_prompts(pipe.tokenizer, pipe.text_encoder, PROMPTS, n)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_every_clip_skip_gives_different_embeddings(pipe):
    embs = {n: encode_prompts(pipe.tokenizer, pipe.text_encoder, PROMPTS, n) for n in range(1, LAYERS + 1)}
    for a, b in itertools.combinations(embs, 2):
        diff = (embs[a] - embs[b]).abs().max().item()
        assert diff > 1e-2, f"clip_skip {a} and {b} give (almost) the same embeddings: max diff {diff}"


@pytest.mark.parametrize("bad", [0, LAYERS + 1, -1])
def test_out_of_range_clip_skip_names_valid_range(pipe, bad):
    with pytest.raises(ValueError, match=rf"clip_skip={bad}\b.*1\.\.{LAYERS}"):
        encode_prompts(pipe.tokenizer, pipe.text_encoder, PROMPTS, bad)


def test_a_prompt_past_77_tokens_is_warned_once():
    from render_helpers import TINY

    from sdexp.models import load_model
    from sdexp.render import EncodingCache

    warned = []
    enc = EncodingCache(warn=warned.append)
    model = load_model(TINY, torch.device("cpu"), torch.float32)
    long = " ".join(["cat"] * 80)
    enc.get(model, ["a cat", long], 1)
    enc.get(model, [long], 2)                            # another clip skip: encoded again, not warned again
    assert len(warned) == 1 and "is 80 tokens; the text encoder reads the first 75" in warned[0]
