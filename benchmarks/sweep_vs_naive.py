"""Benchmark: the sdexp sweep engine against a naive loop of one diffusers pipeline call per image.

Reference grid: 3 VAEs x 2 clip skips x 3 CFG scales x 4 seeds x 2 prompts (144 images), Euler a.
Both run in this one process, side by side. Prints images/s, UNet evaluations (samples through
the UNet) and peak memory of each, the bare batched UNet loop doing sdexp's UNet evaluations, sdexp
with CLIP scoring against the bare necessary work (the same UNet evaluations, VAE decodes and CLIP
scores, batched, nothing else), the stage line of each sdexp run, and key=value lines:
`fraction_of_bare_unet_loop=`, `fraction_of_bare_work=` and, last, `speedup_vs_naive=<ratio>`.

    python benchmarks/sweep_vs_naive.py                      # tiny model, CPU
    python benchmarks/sweep_vs_naive.py --full-size --device cuda --dtype float16 --size 512 --steps 20
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import threading
import time
from pathlib import Path

import torch

from sdexp import tiny
from sdexp.clipscore import ClipScorer
from sdexp.encode import encode_prompts
from sdexp.models import ModelCache, ModelSpec, VaeSpec, load_model, load_vae
from sdexp.plan import Cell, Plan
from sdexp.render import plan_batches
from sdexp.samplers import build_scheduler, get_sampler
from sdexp.store import Store
from sdexp.renderer import quiet_libraries
from sdexp.sweep import render_plan

PROMPTS = ["a portrait photo of an old fisherman, dramatic lighting", "a watercolor painting of a mountain lake"]
NEGATIVE = "blurry, low quality"
CFGS = (3.0, 5.0, 7.0)
CLIP_SKIPS = (1, 2)
SEEDS = (0, 1, 2, 3)


class UnetCounter:
    """Counts UNet calls and samples (batch rows) through a forward pre-hook."""

    def __init__(self, unet):
        self.calls = self.samples = 0
        self.handle = unet.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.calls += 1
        self.samples += args[0].shape[0]


class PeakMemory:
    """Peak CUDA memory allocated, or peak process RSS sampled every 10 ms on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        page = 4096
        while not self._stop.is_set():
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
            self.peak = max(self.peak, rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()

    def __str__(self):
        kind = "allocated" if self.device.type == "cuda" else "process RSS"
        return f"{self.peak / 2**20:.0f} MiB ({kind})"


def full_size_folder(dtype: torch.dtype, family: str = "sd15") -> Path:
    """A full-size SD1.5 (or SDXL base, `family="sdxl"`) architecture with random weights, from the
    shipped skeleton, saved once as a diffusers folder (initialized on the GPU when there is one)."""
    import diffusers
    from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from sdexp.single_file import skeleton_folder

    folder = tiny.cache_root() / f"bench-{family}-random"
    if (folder / "model_index.json").exists():
        return folder
    skel = skeleton_folder(family)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        parts = {"unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(skel / "unet")),
                 "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(skel / "vae")),
                 "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(skel / "text_encoder"))}
        if family == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(skel / "text_encoder_2"))
    parts = {k: v.to(dtype) for k, v in parts.items()}
    parts.update({t: CLIPTokenizer.from_pretrained(skel / t) for t in ("tokenizer", "tokenizer_2") if (skel / t).is_dir()})
    scheduler = json.loads((skel / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    parts["scheduler"] = getattr(diffusers, scheduler).from_pretrained(skel / "scheduler")
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(**parts, add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def full_size_clip_folder() -> Path:
    """A CLIP ViT-L/14 scorer (the architecture of openai/clip-vit-large-patch14) with random weights,
    saved once with SD1.5's tokenizer and CLIP's image processor (224 px)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from sdexp.single_file import skeleton_folder

    folder = tiny.cache_root() / "bench-clip-l-random"
    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "projection_dim": 768},
        projection_dim=768)
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 224},
                                                     crop_size={"height": 224, "width": 224}),
                  tokenizer=CLIPTokenizer.from_pretrained(skeleton_folder("sd15") / "tokenizer")).save_pretrained(folder)
    return folder


def cells(model: ModelSpec, vaes: list[VaeSpec], steps: int, size: int, seeds=SEEDS, prompts=PROMPTS,
          cfgs=CFGS, clip_skips=CLIP_SKIPS) -> list[Cell]:
    return [Cell(model, vae, "Euler a", steps, cfg, cs, seed, prompt, NEGATIVE, size, size)
            for vae, cs, cfg, seed, prompt in itertools.product(vaes, clip_skips, cfgs, seeds, prompts)]


def naive(cells_: list[Cell], device, dtype, out: Path) -> dict:
    """One StableDiffusionPipeline call per image, as AUTOMATIC1111's X/Y/Z plot renders each cell."""
    from diffusers import StableDiffusionPipeline

    model = load_model(cells_[0].model, device, dtype)
    vaes = {spec: load_vae(spec, model)[0] for spec in dict.fromkeys(c.vae for c in cells_)}
    pipe = StableDiffusionPipeline(vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer,
                                   unet=model.unet, scheduler=build_scheduler(get_sampler("euler_a"),
                                                                              model.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    counter = UnetCounter(model.unet)
    t0 = time.perf_counter()
    for i, c in enumerate(cells_):
        pipe.vae = vaes[c.vae]
        # clip skip via our own embeddings: diffusers 0.42.1 + transformers 5 fails on clip_skip=
        cond = encode_prompts(model.tokenizer, model.text_encoder, [c.prompt], c.clip_skip)
        uncond = encode_prompts(model.tokenizer, model.text_encoder, [c.negative_prompt], c.clip_skip)
        image = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=c.steps,
                     guidance_scale=c.cfg, generator=torch.Generator("cpu").manual_seed(c.seed),
                     height=c.height, width=c.width).images[0]
        image.save(out / f"{i}.png")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    counter.handle.remove()
    return {"seconds": seconds, "unet_calls": counter.calls, "unet_samples": counter.samples}


def sdexp_sweep(cells_: list[Cell], device, dtype, out: Path, batch_size, scorer=None,
                compile_unet: bool = False) -> dict:
    """The sdexp engine: plan, shared encodings and latents, batched denoise, CLIP scores (with a
    scorer), store rows and PNGs. Models and the scorer are loaded before the clock starts, as the
    naive loop's pipeline is."""
    plan = Plan(cells=cells_, folder=out, name="bench", swept=[], grid={},
                scorer={"enabled": scorer is not None, "source": scorer.source if scorer else None},
                run={"device": str(device), "dtype": str(dtype).replace("torch.", ""), "batch_size": batch_size,
                     "max_resident_models": 1, "progress": False, "channels_last": True, "compile": compile_unet,
                     "backend": "local"})
    from diffusers import UNet2DConditionModel

    samples = {"calls": 0, "samples": 0}
    cache = ModelCache(1)
    model = cache.model(cells_[0].model, lambda spec: load_model(
        spec, device, dtype, channels_last=device.type == "cuda", compile=compile_unet))
    for vae in dict.fromkeys(c.vae for c in cells_):
        cache.vae(vae, model)

    def count(module, args):   # the engine loads its own model: count through a global hook
        if isinstance(module, UNet2DConditionModel):
            samples["calls"] += 1
            samples["samples"] += args[0].shape[0]

    said = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        store = Store(out)
        with store.lock():
            render_plan(plan, store, log=said.append, cache=cache, scorer=scorer)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        handle.remove()
    stages = next((m.removeprefix("sdexp: ") for m in said if m.startswith("sdexp: stages:")), "")
    return {"seconds": seconds, "cpu_seconds": cpu, "unet_calls": samples["calls"], "unet_samples": samples["samples"],
            "stages": stages}


@torch.no_grad()
def bare_work(cells_: list[Cell], device, dtype, batch_size: int, scorer=None, decode: bool = False) -> dict:
    """The necessary work alone, batched as sdexp batches it, back to back: sdexp's UNet evaluations
    (random latents and embeddings, no scheduler), and with `decode` one VAE decode per image and,
    with a scorer, its CLIP score (from the decoded tensor, prompts encoded once). Nothing else:
    no files, rows or bookkeeping. Without decode and scorer: the bare UNet loop. Returns the wall
    and process CPU seconds."""
    model = load_model(cells_[0].model, device, dtype, channels_last=device.type == "cuda")
    vaes = {spec: load_vae(spec, model)[0] for spec in dict.fromkeys(c.vae for c in cells_)} if decode else {}
    config = model.unet.config
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in plan_batches(cells_, batch_size):
        lead = batch.lead
        guided = lead[0].cfg > 1
        n = len(lead) * (2 if guided else 1)
        x = torch.randn(len(lead), config.in_channels, lead[0].height // 8, lead[0].width // 8, device=device,
                        dtype=dtype)
        emb = torch.randn(n, 77, config.cross_attention_dim, device=device, dtype=dtype)
        added = None
        if model.family == "sdxl":        # pooled text embedding and the six size/crop ids
            pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
            added = {"text_embeds": torch.randn(n, pooled, device=device, dtype=dtype),
                     "time_ids": torch.randn(n, 6, device=device, dtype=dtype)}
        for t in range(lead[0].steps):
            model.unet(torch.cat([x] * 2) if guided else x, 999 - t * 50, encoder_hidden_states=emb,
                       added_cond_kwargs=added, return_dict=False)
        for spec, vae in vaes.items():
            picks = [(i, c) for i, t in enumerate(batch.trajectories) for c in t if c.vae == spec]
            latents = x[[i for i, _ in picks]].to(vae.dtype)        # SDXL's VAE may stay in float32
            raw = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
            pixels = ((raw / 2 + 0.5).clamp(0, 1).float() * 255).round().to(torch.uint8)
            if scorer is not None:
                scorer.score_pixels(list(pixels), [c.scoring_prompt for _, c in picks])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--full-size", action="store_true", help="SD1.5 architecture, random weights")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of sdexp and the bare loops; best counts")
    ap.add_argument("--naive-images", type=int, default=0,
                    help="render only the grid's first N images in the naive loop (its rate is per image); 0: all")
    args = ap.parse_args()
    quiet_libraries()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    source = str(full_size_folder(dtype)) if args.full_size else "tiny"
    model = ModelSpec("sd15-random" if args.full_size else "tiny", source)
    vaes = [VaeSpec("Automatic", None), VaeSpec("tiny", "tiny"), VaeSpec("tiny_alt", "tiny_alt")]
    if args.full_size:   # three VAEs of the full-size architecture: the model's own, twice more by folder
        vaes = [VaeSpec("Automatic", None), VaeSpec("vae-a", f"{source}/vae"), VaeSpec("vae-b", f"{source}/vae/")]
    grid = cells(model, vaes, args.steps, args.size)
    print(f"grid: {len(grid)} images = 3 VAEs x 2 clip skips x 3 CFG x 4 seeds x 2 prompts; "
          f"{args.steps} steps, {args.size}x{args.size}, Euler a, {device}, {args.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    n_naive = min(args.naive_images or len(grid), len(grid))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "naive").mkdir()
        with PeakMemory(device) as mem:
            naive_run = naive(grid[:n_naive], device, dtype, tmp / "naive")
        naive_rate = n_naive / naive_run["seconds"]
        print(f"naive  {naive_rate:8.2f} images/s  {naive_run['seconds']:7.1f} s for {n_naive} images  "
              f"UNet calls {naive_run['unet_calls']:5d}  UNet evaluations (samples) {naive_run['unet_samples']:6d}  "
              f"peak memory {mem}")
        # each pair the best of --repeats runs, alternating, back to back in this process: sdexp against
        # the bare UNet loop, then sdexp with CLIP scoring against the bare necessary work
        scorer = ClipScorer(str(full_size_clip_folder()) if args.full_size else "tiny", device)
        best = {f"{k}{c}": float("inf") for k in ("sdexp", "bare", "scored", "work") for c in ("", "_cpu")}
        runs = {}

        def keep(name, result):
            best[name] = min(best[name], result["seconds"])
            best[name + "_cpu"] = min(best[name + "_cpu"], result["cpu_seconds"])
            return result

        for r in range(args.repeats):
            with PeakMemory(device) as mem:
                runs["sdexp"] = keep("sdexp", sdexp_sweep(grid, device, dtype, tmp / f"sdexp-{r}", args.batch_size))
            keep("bare", bare_work(grid, device, dtype, args.batch_size))
            runs["scored"] = keep("scored", sdexp_sweep(grid, device, dtype, tmp / f"scored-{r}", args.batch_size,
                                                        scorer))
            keep("work", bare_work(grid, device, dtype, args.batch_size, scorer, decode=True))
    r = runs["sdexp"]
    print(f"sdexp  {len(grid) / best['sdexp']:8.2f} images/s  {best['sdexp']:7.1f} s  UNet calls {r['unet_calls']:5d}  "
          f"UNet evaluations (samples) {r['unet_samples']:6d}  peak memory {mem}")
    print(f"  {r['stages']}")
    print(f"bare batched UNet loop (sdexp's UNet evaluations, nothing else): {best['bare']:.1f} s")
    print(f"sdexp with CLIP scoring {len(grid) / best['scored']:.2f} images/s  {best['scored']:.1f} s")
    print(f"  {runs['scored']['stages']}")
    print(f"bare necessary work (the same UNet evaluations, VAE decodes and CLIP scores): {best['work']:.1f} s")
    print(f"repeats={args.repeats}")
    for k, v in best.items():
        print(f"{k}_seconds={v:.2f}")
    # wall time is what counts; on a shared CPU machine the process CPU time (all threads) is steadier
    print(f"fraction_of_bare_unet_loop_cpu={best['bare_cpu'] / best['sdexp_cpu']:.2f}")
    print(f"fraction_of_bare_work_cpu={best['work_cpu'] / best['scored_cpu']:.2f}")
    print(f"fraction_of_bare_unet_loop={best['bare'] / best['sdexp']:.2f}")
    print(f"fraction_of_bare_work={best['work'] / best['scored']:.2f}")
    print(f"speedup_vs_naive={len(grid) / best['sdexp'] / naive_rate:.2f}")


if __name__ == "__main__":
    main()
