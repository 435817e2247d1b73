"""A tiny Stable Diffusion XL-layout model, built from code like the tiny SD1 model (sdexp.tiny).

The layout follows SDXL base 1.0 at toy sizes, after diffusers' own SDXL test components: a UNet
with "text_time" added conditioning (pooled text embedding + 6 size/crop ids), two CLIP text
encoders (the second with a projection, as OpenCLIP bigG) whose hidden states are concatenated
for cross-attention, the real CLIP tokenizer twice (the second pads with "!" as SDXL's does), a
VAE with SDXL's scaling factor and SDXL base's Euler scheduler config. The two encoders have
different widths, as in SDXL (768 and 1280), which diffusers' single-file loader relies on to
tell them apart. Weights are random; it exists to test code paths, not to make pictures.

The tiny refiner follows SDXL refiner 1.0's layout: no first text encoder (text_encoder_2 alone
conditions the UNet), a UNet whose added time ids are (original size, crop, aesthetic score), 5 ids
instead of 6 (`requires_aesthetics_score`), and empty negative prompts encoded, not zeroed
(`force_zeros_for_empty_prompt` false), as the refiner's model_index.json says.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from . import tiny

TINY_SDXL_VERSION = "v1"
TEXT_LAYERS = (4, 6)          # text_encoder, text_encoder_2
HIDDEN = (32, 48)
PROJECTION_DIM = 40           # text_encoder_2's pooled width
TIME_EMBED_DIM = 8            # addition_time_embed_dim
VAE_SCALING_FACTOR = 0.13025  # SDXL's


def _text_config(layers: int, hidden: int, act: str, projection_dim: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=projection_dim, hidden_act=act,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )


def make_text_encoders():
    """CLIP-L-like CLIPTextModel and bigG-like CLIPTextModelWithProjection, small and seeded."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(11)
    text_encoder = CLIPTextModel(_text_config(TEXT_LAYERS[0], HIDDEN[0], "quick_gelu", HIDDEN[0]))
    torch.manual_seed(12)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(TEXT_LAYERS[1], HIDDEN[1], "gelu", PROJECTION_DIM))
    return text_encoder, text_encoder_2


def make_unet(refiner: bool = False):
    """The base UNet (both encoders' widths, 6 time ids), or the refiner's (text_encoder_2's width, 5 ids)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(14 if refiner else 10)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, norm_num_groups=32,
        block_out_channels=(32, 64), attention_head_dim=(2, 4), use_linear_projection=True,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2), cross_attention_dim=HIDDEN[1] if refiner else sum(HIDDEN),
        addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=(5 if refiner else 6) * TIME_EMBED_DIM + PROJECTION_DIM,
    )


def make_vae():
    """tiny.make_vae's layout (4 levels, 8x downsampling) with SDXL's scaling factor."""
    from diffusers import AutoencoderKL

    torch.manual_seed(13)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64), sample_size=64, scaling_factor=VAE_SCALING_FACTOR,
        force_upcast=True,
    )


def make_scheduler():
    """SDXL base 1.0's scheduler config."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        prediction_type="epsilon", interpolation_type="linear", use_karras_sigmas=False,
        steps_offset=1, timestep_spacing="leading",
    )
    # keys SDXL base's config carries for other schedulers (DDIM, PNDM read them)
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True,
                                 sample_max_value=1.0)
    return scheduler


def make_pipeline(tokenizer_folder: Path):
    from diffusers import StableDiffusionXLPipeline

    tokenizer = tiny.make_tokenizer(tokenizer_folder / "tokenizer")
    tokenizer_2 = tiny.make_tokenizer(tokenizer_folder / "tokenizer_2")
    tokenizer_2.pad_token = "!"
    text_encoder, text_encoder_2 = make_text_encoders()
    return StableDiffusionXLPipeline(
        vae=make_vae(), text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=make_unet(), scheduler=make_scheduler(),
        force_zeros_for_empty_prompt=True, add_watermarker=False,
    )


def make_refiner_pipeline(tokenizer_folder: Path):
    """The tiny refiner: text_encoder_2 (seeded as the base's) and its tokenizer, its own UNet, the
    base's VAE and scheduler config."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    tokenizer_2 = tiny.make_tokenizer(tokenizer_folder / "tokenizer_2")
    tokenizer_2.pad_token = "!"
    return StableDiffusionXLImg2ImgPipeline(
        vae=make_vae(), text_encoder=None, text_encoder_2=make_text_encoders()[1], tokenizer=None,
        tokenizer_2=tokenizer_2, unet=make_unet(refiner=True), scheduler=make_scheduler(),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False,
    )


def _build(root: Path, make=make_pipeline) -> None:
    with tempfile.TemporaryDirectory() as tok:
        make(Path(tok)).save_pretrained(root / "model", safe_serialization=True)


def tiny_sdxl_folder() -> Path:
    """The tiny SDXL diffusers folder, built once (atomically) into sdexp's cache."""
    return tiny.build_once(tiny.cache_root() / f"tiny-sdxl-{TINY_SDXL_VERSION}", _build) / "model"


def tiny_refiner_folder() -> Path:
    """The tiny SDXL refiner's diffusers folder, built once into sdexp's cache."""
    return tiny.build_once(tiny.cache_root() / f"tiny-sdxl-refiner-{TINY_SDXL_VERSION}",
                           lambda root: _build(root, make_refiner_pipeline)) / "model"
