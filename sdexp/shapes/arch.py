"""The shapes model's architecture: small models in the Stable Diffusion 1.x layout (diffusers'
AutoencoderKL and UNet2DConditionModel, transformers' CLIPModel), built with seeded initialisation.

- VAE: 64x64x3 <-> 8x8x4 (factor 8, 4 latent channels), 4 encoder/decoder levels as SD1's, without
  the mid-block attention (so it trains on crops); GroupNorm with 2 groups (4+ channels per group: with
  one channel per group the norm removes each channel's mean, which is a flat image's colour);
- CLIP: a 32-wide, 3-layer text tower on the real CLIP tokenizer (its hidden states condition the
  UNet) and a 64x64 ViT image tower, patch 8 (the scorer); 32-d joint embedding;
- UNet: 8x8x4 latents, two levels (8x8, 4x4), cross-attention at 4x4 and in the mid block on the text
  tower's last hidden states (77 x 32), as SD1 conditions on them.

The sizes are set by the CPU budget (about an hour on 2 cores for everything).
"""
from __future__ import annotations

import torch

TEXT_WIDTH = 32
TEXT_LAYERS = 3
EMBED_DIM = 32               # CLIP's joint embedding (the scorer's image features for FD and CMMD)
SCALING_FACTOR = 1.0         # replaced by 1 / std of the trained VAE's latents (train.py)

# SD1.5's scheduler config (sdexp/skeletons/sd15/scheduler/scheduler_config.json)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 steps_offset=1, skip_prk_steps=True, set_alpha_to_one=False, clip_sample=False)


def make_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32), sample_size=64, scaling_factor=SCALING_FACTOR,
        mid_block_add_attention=False,     # fully convolutional: trained on crops, used on whole images
    )


def text_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=128, num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=EMBED_DIM,
        hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )


def make_clip(seed: int = 1):
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              image_size=64, patch_size=8, projection_dim=EMBED_DIM, hidden_act="quick_gelu")
    config = CLIPConfig(text_config=text_config().to_dict(), vision_config=vision.to_dict(),
                        projection_dim=EMBED_DIM)
    torch.manual_seed(seed)
    return CLIPModel(config)


def make_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})


def make_unet(seed: int = 2):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(32, 64), cross_attention_dim=TEXT_WIDTH, attention_head_dim=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )


def make_scheduler():
    from diffusers import PNDMScheduler

    scheduler = PNDMScheduler(**{k: v for k, v in SCHEDULER.items() if k != "clip_sample"})
    scheduler.register_to_config(clip_sample=False)   # as in SD1.5's config; DDIM reads it
    return scheduler
