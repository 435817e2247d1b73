"""The embedded default: a tiny Stable Diffusion 1.x-layout model and a tiny CLIP scorer.

Everything is built deterministically from code (seeded initialisation), with the real CLIP
tokenizer derived from open_clip's BPE file, saved once to a cache folder and then loaded
through exactly the same code path as any real diffusers folder.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

TINY_VERSION = "v2"
TINY_VAES = ("tiny", "tiny_alt")
TEXT_LAYERS = 12
TEXT_WIDTH = 32
_VAE_SEEDS = {"tiny": 2, "tiny_alt": 3}


def cache_root() -> Path:
    """Where sdexp keeps built artefacts: `$SDEXP_CACHE`, else `~/.cache/sdexp`."""
    return Path(os.environ.get("SDEXP_CACHE", Path.home() / ".cache" / "sdexp")).expanduser()


def _bytes_to_unicode() -> dict[int, str]:
    """The byte-to-unicode table of the CLIP BPE tokenizer (GPT-2 style)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_clip_tokenizer_files(folder: Path) -> None:
    """Write vocab.json and merges.txt of the real CLIP tokenizer, derived from open_clip's BPE file."""
    import open_clip

    bpe_path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = merges[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def make_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    write_clip_tokenizer_files(folder)
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77, pad_token="<|endoftext|>"
    )


def _text_config(layers: int = TEXT_LAYERS):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
        hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )


def make_vae(name: str):
    """A tiny SD1-layout AutoencoderKL (4 levels, 8x downsampling, 4 latent channels)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(_VAE_SEEDS[name])
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64), sample_size=64, scaling_factor=0.18215,
    )


def make_pipeline(tokenizer_folder: Path):
    """A tiny StableDiffusionPipeline in the SD1 block layout with an SD1.5 scheduler config."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, norm_num_groups=32,
        block_out_channels=(32, 32, 64, 64), cross_attention_dim=32, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    torch.manual_seed(1)
    text_encoder = CLIPTextModel(_text_config())
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        steps_offset=1, skip_prk_steps=True, set_alpha_to_one=False,
    )
    scheduler.register_to_config(clip_sample=False)  # as in SD1.5's config; DDIM reads it
    return StableDiffusionPipeline(
        vae=make_vae("tiny"), text_encoder=text_encoder, tokenizer=make_tokenizer(tokenizer_folder),
        unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def make_clip_scorer(tokenizer_folder: Path):
    """A tiny transformers CLIPModel and its CLIPProcessor (32x32 ViT, real tokenizer)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=32,
    )
    config = CLIPConfig(text_config=_text_config(2).to_dict(), vision_config=vision.to_dict(), projection_dim=32)
    torch.manual_seed(4)
    model = CLIPModel(config)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, CLIPProcessor(image_processor=images, tokenizer=make_tokenizer(tokenizer_folder))


def _build(root: Path) -> None:
    with tempfile.TemporaryDirectory() as tok:
        pipe = make_pipeline(Path(tok))
        pipe.save_pretrained(root / "model", safe_serialization=True)
        make_vae("tiny_alt").save_pretrained(root / "vae" / "tiny_alt", safe_serialization=True)
        make_vae("tiny").save_pretrained(root / "vae" / "tiny", safe_serialization=True)
        model, processor = make_clip_scorer(Path(tok))
        model.save_pretrained(root / "clip", safe_serialization=True)
        processor.save_pretrained(root / "clip")


def build_once(root: Path, build) -> Path:
    """Run build(folder) once into a temporary folder and rename it to root (atomic); return root."""
    if (root / "complete").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        build(tmp)
        (tmp / "complete").write_text("ok\n")
        try:
            tmp.rename(root)
        except OSError:  # another process finished first
            if not (root / "complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def tiny_root() -> Path:
    """Build the tiny artefacts once (atomically) and return their folder."""
    return build_once(cache_root() / f"tiny-{TINY_VERSION}", _build)


def tiny_model_folder() -> Path:
    return tiny_root() / "model"


def tiny_vae_folder(name: str) -> Path:
    return tiny_root() / "vae" / name


def tiny_clip_folder() -> Path:
    return tiny_root() / "clip"
