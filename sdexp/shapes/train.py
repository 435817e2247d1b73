"""Train the shapes model on the CPU, in three stages, then export it in the SD1 layout.

1. VAE: AutoencoderKL on the train split (L1 + MSE reconstruction, a small KL term);
   its scaling factor is set to 1 / std of the latents, as SD's 0.18215 was chosen.
2. CLIP: contrastive loss on batches holding every caption once (so a batch has no false negatives);
   half of the images are passed through the trained VAE first, so the image tower (the scorer)
   knows decoded images as well as drawn ones.
3. UNet: noise prediction on the VAE's latents with SD1.5's noise schedule, conditioned on the CLIP
   text tower's last hidden states (77 x 32, as sdexp's engine computes them), the caption dropped
   to "" 25% of the time so classifier-free guidance works; an EMA of its weights is exported.
   The EMA is taken at step 4100 of a 7000-step schedule (`--unet-stop`): there, as with SD,
   CFG 7 renders the prompted colour and shape more often than CFG 1 (judge, all captions, seeds
   0-1: 90% vs 74%); trained to the end, the conditional prediction sharpens until CFG 7 overshoots
   (step 6000: 77% vs 86%; a first run with 10% dropout and 8000 steps: 58% vs 95%).

Each stage keeps a checkpoint (safetensors: weights, optimiser state, step) in the work folder every
few hundred steps and resumes from it, so a run cut off loses little. Export writes a diffusers
StableDiffusionPipeline folder and a transformers CLIPModel folder, and TRAINING.json with the
settings, seeds, library versions, timings and final losses.

    python scripts/train_shapes.py --threads 1           # the committed weights; work in ~/.cache/sdexp/shapes-train
    python scripts/train_shapes.py --work /tmp/w --out /tmp/shapes --unet-steps 6000 --unet-stop 0
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import arch, dataset
from .checkpoints import Stage, architecture, cached

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class TrainConfig:
    threads: int = 2
    images: int = 126 * 32            # train-split images 0..N-1 (every caption 32 times)
    vae_steps: int = 2500
    vae_batch: int = 16
    vae_crop: int = 32                # the VAE trains on random crops (it is fully convolutional)
    vae_lr: float = 2e-3
    vae_kl: float = 1e-6
    clip_steps: int = 1500
    clip_lr: float = 2e-3
    clip_recon: int = 126 * 8         # images also shown to CLIP after a VAE round trip
    unet_steps: int = 7000            # the length of the learning-rate schedule
    unet_stop: int = 4100             # export the EMA at this step of it (0: at unet_steps); see below
    unet_batch: int = 64
    unet_lr: float = 1e-3
    unet_warmup: int = 100
    caption_dropout: float = 0.25
    ema: float = 0.995
    save_every: int = 100
    seed_vae: int = 10
    seed_clip: int = 11
    seed_unet: int = 12


# --- data -----------------------------------------------------------------------------------------

def pool(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Train-split images 0..count-1 (uint8 NHWC) and their caption indices into dataset.CAPTIONS."""
    images = np.stack([dataset.image("train", i) for i in range(count)])
    return images, np.arange(count) % len(dataset.COMBINATIONS)


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] (the VAE's range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def clip_pixels(unit: torch.Tensor) -> torch.Tensor:
    """[-1, 1] NCHW -> CLIP-normalised pixels, as CLIPImageProcessor gives them for 64x64 images."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((unit.clamp(-1, 1) + 1) / 2 - mean) / std


# --- stage 1: VAE -------------------------------------------------------------------------------

def train_vae(cfg: TrainConfig, work: Path, images: np.ndarray, log) -> tuple[torch.nn.Module, dict]:
    vae = arch.make_vae(cfg.seed_vae)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    stage = Stage("vae", work, cfg.vae_steps, {"vae": vae}, opt, cfg.save_every, log)
    data = to_unit(images)
    gen = torch.Generator().manual_seed(cfg.seed_vae * 1000 + stage.step)   # a resumed run reseeds
    vae.train()
    while not stage.done():
        lr = cfg.vae_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * stage.step / cfg.vae_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        x = data[torch.randint(len(data), (cfg.vae_batch,), generator=gen)]
        if cfg.vae_crop < dataset.SIZE:
            i, j = torch.randint(0, dataset.SIZE - cfg.vae_crop + 1, (2,), generator=gen).tolist()
            x = x[:, :, i:i + cfg.vae_crop, j:j + cfg.vae_crop]
        posterior = vae.encode(x).latent_dist
        rec = vae.decode(posterior.sample(generator=gen)).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + cfg.vae_kl * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stage.record(loss.item())
    return vae.eval(), stage.summary()


@torch.no_grad()
def encode(vae, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of the VAE's latents (unscaled)."""
    means, stds = [], []
    for s in range(0, len(images), batch):
        d = vae.encode(to_unit(images[s:s + batch])).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def reconstruct(vae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """VAE reconstructions (posterior means decoded), [-1, 1] NCHW."""
    out = []
    for s in range(0, len(images), batch):
        out.append(vae.decode(vae.encode(to_unit(images[s:s + batch])).latent_dist.mean).sample.clamp(-1, 1))
    return torch.cat(out)


# --- stage 2: CLIP --------------------------------------------------------------------------------

def caption_tokens(tokenizer, captions) -> dict:
    return tokenizer(list(captions), padding=True, return_tensors="pt")


def train_clip(cfg: TrainConfig, work: Path, images: np.ndarray, labels: np.ndarray, recon: torch.Tensor,
               tokenizer, log) -> tuple[torch.nn.Module, dict]:
    clip = arch.make_clip(cfg.seed_clip)
    opt = torch.optim.AdamW(clip.parameters(), lr=cfg.clip_lr, weight_decay=0.01)
    stage = Stage("clip", work, cfg.clip_steps, {"clip": clip}, opt, cfg.save_every, log)
    tokens = caption_tokens(tokenizer, dataset.CAPTIONS)
    drawn = to_unit(images)
    per_caption = [np.nonzero(labels == c)[0] for c in range(len(dataset.CAPTIONS))]
    rng = np.random.default_rng([cfg.seed_clip, stage.step])
    clip.train()
    while not stage.done():
        lr = cfg.clip_lr * min(1.0, (stage.step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * stage.step / cfg.clip_steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.from_numpy(np.array([rng.choice(p) for p in per_caption]))
        use_recon = torch.from_numpy((rng.random(len(idx)) < 0.5) & (idx.numpy() < len(recon))).view(-1, 1, 1, 1)
        x = torch.where(use_recon, recon[idx.clamp(max=len(recon) - 1)], drawn[idx])
        out = clip(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                   pixel_values=clip_pixels(x), return_loss=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        stage.record(out.loss.item())
    return clip.eval(), stage.summary()


def text_encoder_from_clip(clip):
    """A CLIPTextModel holding the CLIP model's text tower (the same weights, SD1's text_encoder)."""
    from transformers import CLIPTextModel

    te = CLIPTextModel(arch.text_config())
    mine = clip.state_dict()
    target = te.state_dict()
    mapped = {k: mine.get(k, mine.get("text_model." + k)) for k in target}
    mapped = {k: v for k, v in mapped.items() if v is not None}
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise RuntimeError(f"text tower weights not found in the CLIP model: {missing[:4]}")
    te.load_state_dict(mapped)
    return te.eval()


@torch.no_grad()
def condition_table(text_encoder, tokenizer) -> torch.Tensor:
    """(len(CAPTIONS) + 1, 77, width) UNet conditions: every caption, then "" (the dropped caption),
    encoded as sdexp's engine encodes prompts (clip skip 1)."""
    from ..encode import encode_prompts

    return encode_prompts(tokenizer, text_encoder, list(dataset.CAPTIONS) + [""], clip_skip=1)


# --- stage 3: UNet --------------------------------------------------------------------------------

def train_unet(cfg: TrainConfig, work: Path, mean: torch.Tensor, std: torch.Tensor, labels: np.ndarray,
               table: torch.Tensor, scaling: float, log) -> tuple[torch.nn.Module, dict]:
    unet = arch.make_unet(cfg.seed_unet)
    ema = arch.make_unet(cfg.seed_unet)
    ema.load_state_dict(unet.state_dict())
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=0.0)
    stage = Stage("unet", work, min(cfg.unet_stop or cfg.unet_steps, cfg.unet_steps), {"unet": unet, "ema": ema},
                  opt, cfg.save_every, log)
    s = arch.SCHEDULER
    betas = torch.linspace(s["beta_start"] ** 0.5, s["beta_end"] ** 0.5, s["num_train_timesteps"]) ** 2
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    labels_t = torch.from_numpy(labels)
    empty = len(dataset.CAPTIONS)
    gen = torch.Generator().manual_seed(cfg.seed_unet * 1000 + stage.step)
    unet.train()
    while not stage.done():
        warm = min(1.0, (stage.step + 1) / cfg.unet_warmup)
        lr = cfg.unet_lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * stage.step / cfg.unet_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(mean), (cfg.unet_batch,), generator=gen)
        z = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scaling
        t = torch.randint(0, s["num_train_timesteps"], (cfg.unet_batch,), generator=gen)
        noise = torch.randn(z.shape, generator=gen)
        ab = alpha_bar[t].view(-1, 1, 1, 1)
        zt = ab.sqrt() * z + (1 - ab).sqrt() * noise
        cond = labels_t[idx].clone()
        cond[torch.rand(cfg.unet_batch, generator=gen) < cfg.caption_dropout] = empty
        pred = unet(zt, t, encoder_hidden_states=table[cond]).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + stage.step) / (10 + stage.step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        stage.record(loss.item())
    return ema.eval(), stage.summary()


# --- export ---------------------------------------------------------------------------------------

def versions() -> dict:
    import importlib.metadata as md

    return {"python": platform.python_version(),
            **{p: md.version(p) for p in ("torch", "diffusers", "transformers", "numpy", "pillow", "safetensors")}}


def export(out: Path, vae, clip, unet, tokenizer_folder: Path, record: dict) -> None:
    import shutil

    from diffusers import StableDiffusionPipeline
    from transformers import CLIPProcessor

    from ..tiny import make_tokenizer

    tokenizer = make_tokenizer(tokenizer_folder)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder_from_clip(clip), tokenizer=tokenizer, unet=unet,
        scheduler=arch.make_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    for name in ("model", "clip"):
        shutil.rmtree(out / name, ignore_errors=True)
    pipe.save_pretrained(out / "model", safe_serialization=True)
    clip.save_pretrained(out / "clip", safe_serialization=True)
    CLIPProcessor(image_processor=arch.make_image_processor(), tokenizer=tokenizer).save_pretrained(out / "clip")
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")


def run(cfg: TrainConfig, work: Path, out: Path, log=print) -> dict:
    import tempfile

    from ..tiny import make_tokenizer

    torch.set_num_threads(cfg.threads)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    images, labels = pool(cfg.images)
    log(f"data: {len(images)} train images in {time.perf_counter() - t0:.1f} s")
    vae, vae_summary = train_vae(cfg, work, images, log)
    import hashlib

    vae_id = hashlib.sha256(architecture(vae).encode()).hexdigest()[:8]
    mean, std, recon = cached(work / f"latents-{vae_summary['steps']}-{vae_id}.safetensors",
                              lambda: (*encode(vae, images), reconstruct(vae, images[:cfg.clip_recon])))
    scaling = float(1 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    log(f"vae: latent std {mean.std():.4f}, scaling factor {scaling:.5f}")
    with tempfile.TemporaryDirectory() as tok:
        tokenizer = make_tokenizer(Path(tok))
        clip, clip_summary = train_clip(cfg, work, images, labels, recon, tokenizer, log)
        table = condition_table(text_encoder_from_clip(clip), tokenizer)
        unet, unet_summary = train_unet(cfg, work, mean, std, labels, table, scaling, log)
        record = {
            "command": "python scripts/train_shapes.py " + " ".join(sys.argv[1:]),
            "config": asdict(cfg), "data_seed": dataset.DATA_SEED, "versions": versions(),
            "vae": {**vae_summary, "scaling_factor": scaling}, "clip": clip_summary, "unet": unet_summary,
            "parameters": {"vae": sum(p.numel() for p in vae.parameters()),
                           "clip": sum(p.numel() for p in clip.parameters()),
                           "unet": sum(p.numel() for p in unet.parameters())},
            "cpu_threads": cfg.threads, "cpu_count": os.cpu_count(),
            "wall_seconds_this_run": round(time.perf_counter() - t0, 1),
        }
        export(out, vae, clip, unet, Path(tok), record)
    log(f"exported to {out} ({time.perf_counter() - t0:.0f} s this run)")
    return record


def main(argv: list[str] | None = None) -> int:
    from . import WEIGHTS_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=None, help="checkpoints (default: $SDEXP_CACHE/shapes-train)")
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help=f"where the weights go (default: {WEIGHTS_DIR})")
    for name, value in asdict(TrainConfig()).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    args = p.parse_args(argv)
    cfg = TrainConfig(**{k: getattr(args, k) for k in asdict(TrainConfig())})
    if args.work is None:
        from ..tiny import cache_root

        args.work = cache_root() / "shapes-train"
    run(cfg, args.work, args.out, log=lambda m: print(m, flush=True))
    return 0
